// Package segmentation assembles segmentation models and trains and evaluates them.
package segmentation
