package closedloop

import (
	"fmt"
	"io"
	"time"
)

// Report is a run's summary, printed as text by Print or marshalled as JSON (its
// durations in microseconds) for scripts.
type Report struct {
	// Title names what was measured (the tool, the target, its settings).
	Title       string `json:"title"`
	Connections int    `json:"connections"`
	Pipeline    int    `json:"pipeline"`
	// Size is the payload of one request in bytes.
	Size int `json:"size"`

	WindowSeconds float64 `json:"window_seconds"`
	// Acked counts the replies read in the window; AckedTotal every acknowledged request.
	Acked      int     `json:"acked"`
	AckedTotal int64   `json:"acked_total"`
	Throughput float64 `json:"throughput_per_second"`
	MBPerSec   float64 `json:"mb_per_second"`

	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	P999US float64 `json:"p999_us"`
	MaxUS  float64 `json:"max_us"`

	// InFlight is connections x pipeline; LittleInFlight is throughput x mean latency,
	// which Little's law says equals it when every slot is always taken, and LittleRatio
	// is LittleInFlight / InFlight.
	InFlight       int     `json:"in_flight"`
	LittleInFlight float64 `json:"little_in_flight"`
	LittleRatio    float64 `json:"little_ratio"`

	Errors   int64  `json:"errors"`
	FirstErr string `json:"first_error,omitempty"`
}

// NewReport summarises res, a run of conns connections with opts and size-byte requests.
// It fails when no request was acknowledged in the window, which leaves nothing to report.
func NewReport(title string, conns, size int, opts Options, res *Result) (*Report, error) {
	lat := res.Latencies
	if len(lat) == 0 {
		return nil, fmt.Errorf("no request was acknowledged in the window (%d errors, first: %v)", res.Errors, res.FirstErr)
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	n := float64(len(lat))
	secs := res.Window.Seconds()
	mean := sum.Seconds() / n
	r := &Report{
		Title: title, Connections: conns, Pipeline: opts.Pipeline, Size: size,
		WindowSeconds: secs, Acked: len(lat), AckedTotal: res.AckedTotal,
		Throughput: n / secs, MBPerSec: n * float64(size) / secs / 1e6,
		MeanUS: mean * 1e6,
		P50US:  us(percentile(lat, 0.50)), P90US: us(percentile(lat, 0.90)),
		P99US: us(percentile(lat, 0.99)), P999US: us(percentile(lat, 0.999)),
		MaxUS:    us(lat[len(lat)-1]),
		InFlight: conns * opts.Pipeline,
		Errors:   res.Errors,
	}
	r.LittleInFlight = r.Throughput * mean
	r.LittleRatio = r.LittleInFlight / float64(r.InFlight)
	if res.FirstErr != nil {
		r.FirstErr = res.FirstErr.Error()
	}
	return r, nil
}

// percentile is the nearest-rank q-quantile of sorted (not empty).
func percentile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*q))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Print writes the report as text.
func (r *Report) Print(w io.Writer) {
	ms := func(v float64) string { return fmt.Sprintf("%.2fms", v/1000) }
	fmt.Fprintf(w, "%s: %d connections x %d in flight, %d-byte payloads\n", r.Title, r.Connections, r.Pipeline, r.Size)
	fmt.Fprintf(w, "  acknowledged  %d in %.1fs (%d in the whole run, warm-up included)\n", r.Acked, r.WindowSeconds, r.AckedTotal)
	fmt.Fprintf(w, "  throughput    %.0f entries/s, %.1f MB/s\n", r.Throughput, r.MBPerSec)
	fmt.Fprintf(w, "  latency       mean %s  p50 %s  p90 %s  p99 %s  p999 %s  max %s\n",
		ms(r.MeanUS), ms(r.P50US), ms(r.P90US), ms(r.P99US), ms(r.P999US), ms(r.MaxUS))
	fmt.Fprintf(w, "  Little's law  in flight %d; throughput x mean latency %.1f (ratio %.3f)\n",
		r.InFlight, r.LittleInFlight, r.LittleRatio)
	if r.Errors > 0 {
		fmt.Fprintf(w, "  errors        %d (first: %s)\n", r.Errors, r.FirstErr)
	}
}
