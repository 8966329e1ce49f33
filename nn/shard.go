package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
)

// Collective combines the partial results of the ranks that train one model data-parallel
// (package parallel's Comm is one). Every rank calls the same collectives in the same order; the
// sums add the ranks' values in rank order, so every rank gets the same bits.
type Collective interface {
	Rank() int
	Size() int
	SumFloat64(x []float64) error
	SumFloat32(x []float32) error
	// SumFloat32Async starts SumFloat32(x) and returns at once; wait returns when x holds the
	// sum. These sums pair up between the ranks in the order they are started, apart from the
	// other collectives (SyncBN's run while one is in flight).
	SumFloat32Async(x []float32) (wait func() error)
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
//   - the gradients are summed over the ranks in buckets, each started as soon as the backward
//     pass has produced its gradients (as PyTorch's DDP does), so that the sums run while the
//     backward goes on; the losses reported are the whole batch's, the same on every rank.
//
// With one rank the Net trains exactly as without a Shard (no collective is called).
type Shard struct {
	Comm   Collective
	SyncBN bool
	// BucketBytes is the size a bucket of gradients grows to before its sum starts (0:
	// DefaultBucketBytes). The sums are elementwise, so any size gives the same bits.
	BucketBytes int

	buffers []float32 // the buffers fused, one collective
}

// DefaultBucketBytes: buckets big enough that a sum's fixed cost (a few collectives' latency,
// a goroutine) is small next to moving the data, small enough that the first starts early in
// the backward pass and the last, which cannot overlap anything, is short.
const DefaultBucketBytes = 4 << 20

// active reports whether the shard takes part (more than one rank).
func (s *Shard) active() bool { return s != nil && s.Comm != nil && s.Comm.Size() > 1 }

func (s *Shard) String() string {
	return fmt.Sprintf("rank %d/%d syncbn=%t", s.Comm.Rank(), s.Comm.Size(), s.SyncBN)
}

// graphShard is what a training graph of a shard adds: the cross-entropy's state and the extra
// loss terms (rank 0's; others have none but count them, so the ranks' sums line up).
type graphShard struct {
	ce      ceShard
	terms   G.Nodes
	nterms  int
	buckets []gradBucket
	next    int // the next bucket to start in this run
}

// gradBucket is a run of parameters whose gradients are summed in one collective.
type gradBucket struct {
	params     []int // indices into Graph.params
	startAfter int   // the program node after which the sum starts
	fused      []float32
	wait       func() error // the sum in flight this step (nil: not started)
}

// attach plans the gradient buckets of a compiled training graph and makes its batch norms
// synchronised (with SyncBN).
func (s *Shard) attach(gr *Graph) {
	s.planBuckets(gr)
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

// planBuckets groups the parameters into buckets and finds the node after which each bucket's
// sum starts. The buckets must pair up between the ranks, whose graphs differ (rank 0 alone has
// the extra loss terms), so what goes into a bucket and the order the sums start in do not
// depend on the graph: parameters in reverse order of creation (the backward pass produces
// their gradients roughly so), bucket after bucket. Only where a bucket starts depends on the
// graph: after its last gradient is computed, and not before the bucket ahead of it.
func (s *Shard) planBuckets(gr *Graph) {
	limit := s.BucketBytes
	if limit <= 0 {
		limit = DefaultBucketBytes
	}
	sh := gr.shard
	sh.buckets = sh.buckets[:0]
	var b gradBucket
	bytes := 0
	for i := len(gr.params) - 1; i >= 0; i-- {
		b.params = append(b.params, i)
		bytes += 4 * gr.grads[i].Shape().TotalSize()
		b.startAfter = max(b.startAfter, gr.prog.index[gr.grads[i]])
		if bytes >= limit || i == 0 {
			sh.buckets = append(sh.buckets, b)
			b, bytes = gradBucket{startAfter: b.startAfter}, 0
		}
	}
	gr.prog.done = func(i int) {
		for sh.next < len(sh.buckets) && sh.buckets[sh.next].startAfter <= i {
			s.startBucket(gr, &sh.buckets[sh.next])
			sh.next++
		}
	}
}

// startBucket copies a bucket's gradients into its fused buffer and starts their sum.
func (s *Shard) startBucket(gr *Graph, b *gradBucket) {
	size := 0
	for _, i := range b.params {
		size += gr.grads[i].Shape().TotalSize()
	}
	b.fused = growFloats(b.fused, size)
	off := 0
	for _, i := range b.params {
		off += copy(b.fused[off:], Floats(gr.prog.value(gr.grads[i])))
	}
	b.wait = s.Comm.SumFloat32Async(b.fused)
}

// sumGradients waits for the buckets' sums (starting those the run did not: a device run calls
// no hook) and copies the sums into the gradients. The first error is the step's.
func (s *Shard) sumGradients(gr *Graph) error {
	sh := gr.shard
	for ; sh.next < len(sh.buckets); sh.next++ {
		s.startBucket(gr, &sh.buckets[sh.next])
	}
	sh.next = 0
	var first error
	for k := range sh.buckets {
		b := &sh.buckets[k]
		if err := b.wait(); err != nil && first == nil {
			first = err
		}
		b.wait = nil
	}
	if first != nil {
		return first
	}
	for _, b := range sh.buckets {
		off := 0
		for _, i := range b.params {
			off += copy(gr.params[i].Grad, b.fused[off:])
		}
	}
	return nil
}

// abandonBuckets waits for the sums a failed run had started: their buffers are in use until
// then.
func (s *Shard) abandonBuckets(gr *Graph) {
	for k := range gr.shard.buckets {
		if b := &gr.shard.buckets[k]; b.wait != nil {
			b.wait()
			b.wait = nil
		}
	}
	gr.shard.next = 0
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
		s.abandonBuckets(gr)
		return Losses{}, err
	}
	for i, p := range gr.params {
		p.Grad = Floats(gr.prog.value(gr.grads[i]))
	}
	if err := s.sumGradients(gr); err != nil {
		return Losses{}, err
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
