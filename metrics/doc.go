// Package metrics computes segmentation metrics (mIoU, aAcc, mAcc) from a streamed confusion
// matrix.
package metrics
