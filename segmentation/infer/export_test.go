package infer

// Mirror is mirror, for the external tests.
var Mirror = mirror
