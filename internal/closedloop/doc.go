// Package closedloop drives a closed-loop write benchmark and reports it: C connections,
// each with at most N requests unanswered, for a warm-up and then a measured window.
// floe bench and tools/natsbench (JetStream) both use it, so the two sides of a
// comparison run the same client pattern and print the same report.
//
// What it promises, because a benchmark that breaks it reports latency that did not happen:
//
//   - A request's send time is taken before the request is written (or buffered), so
//     time spent waiting for a free slot or in the client's buffer is part of its latency,
//     never hidden before the clock starts.
//   - At most Pipeline requests are unanswered per connection at any moment. With
//     Pipeline 1 a connection is strict request/response: write, read the reply, repeat.
//   - Latency runs from before the write to after the reply is read. A reply counts in the
//     measured window when it is read within it; the window's throughput is those replies
//     over the window's length.
//
// The report checks itself with Little's law: in a closed loop whose slots are always
// full, the requests in flight (connections x pipeline) equal throughput x mean latency.
// A ratio far from 1 means the client itself was the bottleneck (slots left empty) or the
// clock was read at the wrong moment.
package closedloop
