package write

// DedupWindow is how many recent request ids an appender remembers the outcome of
// (about 1.5 MiB once full). A retry is deduplicated if fewer appends with an id than
// this came between it and its original, which a retry soon after a timeout or a lost
// connection is. Local hand-offs carry no id and take no room.
const DedupWindow = 1 << 15

// dedupWindow remembers the outcomes of the last size request ids, forgetting the
// oldest first. The zero value is unusable; see newDedupWindow. It allocates its
// memory at the first id it remembers.
type dedupWindow struct {
	size    int
	results map[uint64]remembered // id -> outcome
	order   []uint64              // ring of the ids in results, oldest overwritten first
	next    int                   // the slot of order the next id takes
}

// remembered is an outcome and the slot of the ring its id holds: an id forgotten and
// remembered again holds a new slot, and only that one evicts it.
type remembered struct {
	r    Result
	slot int
}

func newDedupWindow(size int) dedupWindow { return dedupWindow{size: size} }

// remember records the outcome of request id (0: none, nothing is recorded),
// evicting the oldest id once size are remembered.
func (d *dedupWindow) remember(id uint64, r Result) {
	if id == 0 {
		return
	}
	if d.results == nil {
		d.results = make(map[uint64]remembered)
		d.order = make([]uint64, d.size)
	}
	if old := d.order[d.next]; old != 0 {
		if e, ok := d.results[old]; ok && e.slot == d.next {
			delete(d.results, old)
		}
	}
	d.order[d.next] = id
	d.results[id] = remembered{r: r, slot: d.next}
	d.next = (d.next + 1) % d.size
}

// lookup returns the remembered outcome of id.
func (d *dedupWindow) lookup(id uint64) (Result, bool) {
	e, ok := d.results[id]
	return e.r, ok
}

// forget drops id's outcome (its slot in the ring is reused in turn, and evicts
// nothing when it is: the id no longer holds it).
func (d *dedupWindow) forget(id uint64) { delete(d.results, id) }
