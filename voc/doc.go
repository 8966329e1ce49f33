// Package voc reads Pascal VOC 2012 (+SBD) and folder datasets, and generates the demo dataset.
package voc
