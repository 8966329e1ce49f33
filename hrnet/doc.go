// Package hrnet builds HRNetV2 backbones (W18-small-v1/v2, W18, W32, W48) on the nn engine, with
// fixed or DynOPool resizing between resolutions.
package hrnet
