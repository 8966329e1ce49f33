// Package voc is Pascal VOC 2012: its layout (+SBD trainaug, converted from SBD's .mat files),
// classes and palette; and what every dataset shares: reading images and label masks, mmseg's
// augmentation, and the generated demo dataset. Other datasets and the loader are in package
// dataset.
package voc
