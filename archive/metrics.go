package archive

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation names used as the "operation" label of the metrics.
const (
	OpPut      = "put"
	OpGet      = "get"
	OpGetRange = "get_range"
	OpStat     = "stat"
	OpList     = "list"
	OpDelete   = "delete"
)

// WithMetrics returns a view of b that records, per operation, on reg:
//
//	floe_archive_operations_total{operation}          calls
//	floe_archive_operation_errors_total{operation,kind}  failed calls; kind is one of
//	    not_found, exists, precondition_failed, invalid_range, canceled, body (a download failed mid-stream), other
//	floe_archive_bytes_total{operation}              bytes read from the caller's reader
//	    (put) or delivered to the caller (get, get_range)
//	floe_archive_operation_duration_seconds{operation}  latency; for get and get_range up
//	    to the moment the reader is returned (time to first byte)
//
// constLabels (may be nil) tell several buckets apart, e.g. {"bucket": "primary"}. Views
// with the same reg and constLabels share their collectors, so wrapping again after a
// restart does not fail on duplicate registration. An error returned by List's fn is the
// caller's, not the store's, and is not counted. Closing the view closes b.
func WithMetrics(b Bucket, reg prometheus.Registerer, constLabels prometheus.Labels) Bucket {
	m := &metered{b: b}
	m.ops = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "floe_archive_operations_total", Help: "Object store operations started, by operation.",
		ConstLabels: constLabels,
	}, []string{"operation"}))
	m.errs = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "floe_archive_operation_errors_total", Help: "Object store operations that failed, by operation and kind of error.",
		ConstLabels: constLabels,
	}, []string{"operation", "kind"}))
	m.bytes = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "floe_archive_bytes_total", Help: "Bytes uploaded (put) or downloaded (get, get_range).",
		ConstLabels: constLabels,
	}, []string{"operation"}))
	m.dur = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "floe_archive_operation_duration_seconds", Help: "Object store operation latency; for downloads, time to first byte.",
		ConstLabels: constLabels,
		Buckets:     prometheus.ExponentialBuckets(0.0005, 2, 17), // 0.5 ms .. 33 s
	}, []string{"operation"}))
	return m
}

// register registers c, or returns the identical collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error: same name, different labels
	}
	return c
}

type metered struct {
	b     Bucket
	ops   *prometheus.CounterVec
	errs  *prometheus.CounterVec
	bytes *prometheus.CounterVec
	dur   *prometheus.HistogramVec
}

var _ Bucket = (*metered)(nil)

func errorKind(err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrExists):
		return "exists"
	case errors.Is(err, ErrPreconditionFailed):
		return "precondition_failed"
	case errors.Is(err, ErrInvalidRange):
		return "invalid_range"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "other"
	}
}

// observe is deferred by every operation with the time it started.
func (m *metered) observe(op string, start time.Time, err error) {
	m.ops.WithLabelValues(op).Inc()
	m.dur.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		m.errs.WithLabelValues(op, errorKind(err)).Inc()
	}
}

func (m *metered) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	start := time.Now()
	cr := &countingReader{r: r}
	err := m.b.Put(ctx, key, cr, size, opts)
	m.bytes.WithLabelValues(OpPut).Add(float64(cr.n.Load()))
	m.observe(OpPut, start, err)
	return err
}

func (m *metered) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := m.b.Get(ctx, key)
	m.observe(OpGet, start, err)
	if err != nil {
		return nil, err
	}
	return &meteredBody{rc: rc, m: m, op: OpGet}, nil
}

func (m *metered) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := m.b.GetRange(ctx, key, off, length)
	m.observe(OpGetRange, start, err)
	if err != nil {
		return nil, err
	}
	return &meteredBody{rc: rc, m: m, op: OpGetRange}, nil
}

func (m *metered) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	start := time.Now()
	info, err := m.b.Stat(ctx, key)
	m.observe(OpStat, start, err)
	return info, err
}

func (m *metered) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	start := time.Now()
	var fnErr error
	err := m.b.List(ctx, prefix, func(info ObjectInfo) error {
		fnErr = fn(info)
		return fnErr
	})
	storeErr := err
	if fnErr != nil && err == fnErr {
		storeErr = nil
	}
	m.observe(OpList, start, storeErr)
	return err
}

func (m *metered) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := m.b.Delete(ctx, key)
	m.observe(OpDelete, start, err)
	return err
}

func (m *metered) Close() error { return m.b.Close() }

type countingReader struct {
	r io.Reader
	n atomic.Int64 // read by the deferred metric while a backend goroutine may still read
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type meteredBody struct {
	rc     io.ReadCloser
	m      *metered
	op     string
	failed bool
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.m.bytes.WithLabelValues(b.op).Add(float64(n))
	if err != nil && err != io.EOF && !b.failed {
		b.failed = true
		b.m.errs.WithLabelValues(b.op, "body").Inc()
	}
	return n, err
}

func (b *meteredBody) Close() error { return b.rc.Close() }
