package main

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"floe/internal/closedloop"
)

// ackTimeout bounds the wait for one acknowledgement, so a server that stops answering
// ends the run with an error instead of hanging it.
const ackTimeout = 30 * time.Second

// publisher is one connection of the benchmark, publishing the same payload to one
// subject. Send and Recv pass the asynchronous publishes' futures in publish order;
// Call is the synchronous publish.
type publisher struct {
	nc      *nats.Conn
	js      nats.JetStreamContext
	subject string
	payload []byte
	pending chan nats.PubAckFuture
	closed  chan struct{}
	once    sync.Once
}

var _ closedloop.Caller = (*publisher)(nil)

func dialPublisher(url, subject string, payload []byte, depth int) (*publisher, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", url, err)
	}
	// The driver already holds at most depth publishes unanswered; the client's own
	// limit is set to the same so that it never stalls a publish the driver allowed.
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(depth), nats.PublishAsyncTimeout(ackTimeout), nats.MaxWait(ackTimeout))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &publisher{
		nc: nc, js: js, subject: subject, payload: payload,
		pending: make(chan nats.PubAckFuture, depth), closed: make(chan struct{}),
	}, nil
}

// Send publishes asynchronously. The NATS client writes from a goroutine of its own, so
// there is nothing for Flush to do.
func (p *publisher) Send() error {
	f, err := p.js.PublishAsync(p.subject, p.payload)
	if err != nil {
		return err
	}
	p.pending <- f
	return nil
}

func (p *publisher) Flush() error { return nil }

// Recv waits for the oldest asynchronous publish's acknowledgement.
func (p *publisher) Recv() error {
	var f nats.PubAckFuture
	select {
	case f = <-p.pending:
	case <-p.closed:
		return errors.New("natsbench: connection closed")
	}
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return p.classify(err)
	}
}

// Call publishes synchronously: js.Publish returns once the stream has acknowledged.
func (p *publisher) Call() error {
	_, err := p.js.Publish(p.subject, p.payload)
	return p.classify(err)
}

// classify makes an error of a live connection a refusal (the run goes on) and any
// error of a closed one the end of the connection.
func (p *publisher) classify(err error) error {
	if err == nil || p.nc.IsClosed() {
		return err
	}
	return closedloop.Refused(err)
}

func (p *publisher) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.nc.Close()
	})
	return nil
}
