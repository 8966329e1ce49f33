package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
)

// Collective combines the partial results of the ranks that train one model data-parallel
// (package dist's Comm is one). Every rank calls the same collectives in the same order; the
// sums add the ranks' values in rank order, so every rank gets the same bits.
type Collective interface {
	Rank() int
	Size() int
	SumFloat64(x []float64) error
	SumFloat32(x []float32) error
	BroadcastFloat32(x []float32, root int) error
}

// Shard makes a Net one rank of a data-parallel job: every rank trains on its share of each
// batch (the shares, in rank order, are the batch) and steps with the gradient of the whole
// batch, so N ranks × B/N compute the step of one process × B:
//   - the cross-entropy is this rank's summed loss over the labelled pixels of the whole batch,
//     and the model's extra loss terms (DynOPool's GMACs loss) count on rank 0 only, so that
//     the gradients summed over the ranks are the whole batch's;
//   - with SyncBN, batch norm normalises with the statistics of the whole batch (the forward's
//     sums and the backward's, summed over the ranks per layer); without it each rank uses its
//     own share's, and the running statistics are rank 0's (as PyTorch's DDP broadcasts them);
//   - the gradients are summed over the ranks after the backward, and the losses reported are
//     the whole batch's, the same on every rank.
//
// With one rank the Net trains exactly as without a Shard (no collective is called).
type Shard struct {
	Comm   Collective
	SyncBN bool

	grads, buffers []float32 // gradients and buffers fused, one collective each
}

// active reports whether the shard takes part (more than one rank).
func (s *Shard) active() bool { return s != nil && s.Comm != nil && s.Comm.Size() > 1 }

func (s *Shard) String() string {
	return fmt.Sprintf("rank %d/%d syncbn=%t", s.Comm.Rank(), s.Comm.Size(), s.SyncBN)
}

// graphShard is what a training graph of a shard adds: the cross-entropy's state and the extra
// loss terms (rank 0's; others have none but count them, so the ranks' sums line up).
type graphShard struct {
	ce     ceShard
	terms  G.Nodes
	nterms int
}

// attach makes the batch norms of a compiled training graph synchronised (with SyncBN).
func (s *Shard) attach(gr *Graph) {
	if !s.SyncBN {
		return
	}
	for _, n := range gr.prog.nodes {
		if o, ok := n.Op().(op); ok {
			if bn, ok := o.k.(batchNorm); ok && bn.st.train {
				bn.st.sync = s
			}
		}
	}
}

// step runs forward and backward of this rank's share and sums gradients and losses over the
// ranks (Graph.Step's part for a shard).
func (s *Shard) step(gr *Graph, params *Params, x, labels *tensor.Dense) (Losses, error) {
	comm := s.Comm
	count := 0
	for _, l := range labels.Data().([]int32) {
		if l != IgnoreIndex {
			count++
		}
	}
	n := []float64{float64(count)}
	if err := comm.SumFloat64(n); err != nil {
		return Losses{}, err
	}
	gr.shard.ce.denom = int(n[0])
	if err := gr.Forward(x, labels); err != nil {
		return Losses{}, err
	}
	size := 0
	for i, p := range gr.params {
		p.Grad = Floats(gr.prog.value(gr.grads[i]))
		size += len(p.Grad)
	}
	s.grads = growFloats(s.grads, size)
	off := 0
	for _, p := range gr.params {
		off += copy(s.grads[off:], p.Grad)
	}
	if err := comm.SumFloat32(s.grads); err != nil {
		return Losses{}, err
	}
	off = 0
	for _, p := range gr.params {
		off += copy(p.Grad, s.grads[off:])
	}
	sums := make([]float64, 1+gr.shard.nterms)
	sums[0] = gr.shard.ce.sum
	for i, t := range gr.shard.terms {
		v, err := ScalarValue(gr.prog.value(t))
		if err != nil {
			return Losses{}, err
		}
		sums[1+i] = float64(v)
	}
	if err := comm.SumFloat64(sums); err != nil {
		return Losses{}, err
	}
	var l Losses
	if d := gr.shard.ce.denom; d > 0 {
		l.CE = float32(sums[0] / float64(d))
	}
	l.Total = l.CE
	for _, t := range sums[1:] { // as the graph adds them: ((ce + t1) + t2) …
		l.Total += float32(t)
	}
	if !s.SyncBN {
		if err := s.shareBuffers(params); err != nil {
			return l, err
		}
	}
	return l, nil
}

// shareBuffers gives every rank rank 0's buffers (running statistics): without SyncBN each
// rank's own would drift apart, and evaluation and checkpoints need one model.
func (s *Shard) shareBuffers(params *Params) error {
	size := 0
	for _, p := range params.All() {
		if p.Buffer {
			size += len(p.Data())
		}
	}
	s.buffers = growFloats(s.buffers, size)
	off := 0
	for _, p := range params.All() {
		if p.Buffer {
			off += copy(s.buffers[off:], p.Data())
		}
	}
	if err := s.Comm.BroadcastFloat32(s.buffers, 0); err != nil {
		return err
	}
	off = 0
	for _, p := range params.All() {
		if p.Buffer {
			off += copy(p.Data(), s.buffers[off:])
		}
	}
	return nil
}

func growFloats[T float32 | float64](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// syncScratch holds a synchronised batch norm's sums between its collectives.
type syncScratch struct {
	sums  []float64 // forward: Σx per channel and the count; backward: Σdy', Σdy'(x−μ)
	mean  []float32
	count int // values per channel in the whole batch
}

// forwardBN is SyncBN's forward: the whole batch's mean (Σx and the count summed over the
// ranks), then its Σ(x − mean)², then the normalisation with those.
func (s *Shard) forwardBN(st *bnState, bn kernels.BatchNorm, x, gamma, beta, y []float32) error {
	c := bn.C
	if len(st.saved.Mean) != c {
		st.saved = kernels.Stats{Mean: make([]float32, c), InvStd: make([]float32, c)}
	}
	st.sums = growFloats(st.sums, 2*c+1)
	st.mean = growFloats(st.mean, c)
	sum := st.sums[:c+1]
	bn.SumX(x, sum[:c])
	sum[c] = float64(bn.N * bn.HW)
	if err := s.Comm.SumFloat64(sum); err != nil {
		return fmt.Errorf("SyncBN %s: %w", st.layer, err)
	}
	st.count = int(sum[c])
	for i := range st.mean {
		st.mean[i] = float32(sum[i] / sum[c])
	}
	ss := st.sums[:c]
	bn.SumSquares(x, st.mean, ss)
	if err := s.Comm.SumFloat64(ss); err != nil {
		return fmt.Errorf("SyncBN %s: %w", st.layer, err)
	}
	if st.count < 2 {
		return fmt.Errorf("batch norm %s in training mode needs more than one value per channel over the ranks, got %d", st.layer, st.count)
	}
	bn.ForwardGlobal(x, gamma, beta, y, st.mean, ss, st.count, st.saved, st.runMean, st.runVar, st.momentum)
	return nil
}

// backwardBN is SyncBN's backward: dγ and dβ from this rank's share (the gradient sum adds the
// ranks'), dx from the gradient sums of the whole batch.
func (s *Shard) backwardBN(st *bnState, bn kernels.BatchNorm, x, y, dy, gamma, dx []float32) error {
	c := bn.C
	if len(st.dgamma) != c {
		st.dgamma, st.dbeta = make([]float32, c), make([]float32, c)
	}
	st.sums = growFloats(st.sums, 2*c+1)
	sumDy, sumDyXc := st.sums[:c], st.sums[c:2*c]
	bn.GradSums(x, y, dy, st.saved.Mean, sumDy, sumDyXc)
	for i := range c {
		st.dgamma[i], st.dbeta[i] = float32(sumDyXc[i]*float64(st.saved.InvStd[i])), float32(sumDy[i])
	}
	if err := s.Comm.SumFloat64(st.sums[:2*c]); err != nil {
		return fmt.Errorf("SyncBN %s: %w", st.layer, err)
	}
	bn.BackwardGlobal(x, y, dy, gamma, st.saved, sumDy, sumDyXc, st.count, dx)
	return nil
}
