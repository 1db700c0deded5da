package node

import (
	"container/list"
	"sync"

	"floe/node/segment"
)

// maxOpenSealed bounds how many sealed segments a node keeps open. An open segment
// holds its file and an in-memory index of its records (8 bytes per entry), so an
// unbounded number would grow memory with the topic's history.
const maxOpenSealed = 8

// sealedLRU closes the least recently read sealed segments beyond maxOpenSealed. A
// reader that races with a close gets segment.ErrClosed and reopens the segment.
type sealedLRU struct {
	mu    sync.Mutex
	order *list.List // of *segment.Segment, most recent first
	elems map[*segment.Segment]*list.Element
}

func newSealedLRU() *sealedLRU {
	return &sealedLRU{order: list.New(), elems: map[*segment.Segment]*list.Element{}}
}

// touch marks seg as just used and closes the oldest segments over the bound.
func (l *sealedLRU) touch(seg *segment.Segment) {
	var evict []*segment.Segment
	l.mu.Lock()
	if e, ok := l.elems[seg]; ok {
		l.order.MoveToFront(e)
	} else {
		l.elems[seg] = l.order.PushFront(seg)
	}
	for l.order.Len() > maxOpenSealed {
		e := l.order.Back()
		s := e.Value.(*segment.Segment)
		l.order.Remove(e)
		delete(l.elems, s)
		evict = append(evict, s)
	}
	l.mu.Unlock()
	for _, s := range evict {
		s.Close()
	}
}
