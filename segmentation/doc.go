// Package segmentation holds what every part of segkit's application layer shares: a run's
// settings (Config, Resolve, the datasets' recipes), its data (OpenData) and its model
// (NewModel, Describe). The layers above it import it, never the other way round:
//
//	checkpoint  the checkpoint format; segkit and PyTorch files opened as one
//	infer       whole-image, sliding-window and TTA inference, Predictor, rendering, evaluation
//	train       a training run: its loop, its ranks, its log, plots and checkpoints
//	sweep       DynOPool budgets against fixed input scales
//	bench       the training step and inference of a run, timed
package segmentation
