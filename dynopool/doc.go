// Package dynopool implements DynOPool (Pooling Revisited, CVPR 2022): resizing with learned
// per-axis scale factors and the GMACs loss that keeps their compute in check.
package dynopool
