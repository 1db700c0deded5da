package node

import (
	"strconv"

	"floe/meta"
	"floe/node/segment"
)

// reportDamaged logs, once per segment and process, that the active segment seg of
// topic holds a damaged record followed by intact ones (segment.ErrDamaged). Entries
// after the damage may have been acknowledged, so the node refuses to write the
// segment, or seal it, rather than give their offsets to new entries; only an operator
// can move writes off it. The floe_wal_damaged_segments gauge counts such segments.
func (n *Node) reportDamaged(topic string, act *meta.Segment, seg *segment.Segment) {
	err := seg.Damaged()
	if err == nil {
		return
	}
	if _, seen := n.damagedSeen.LoadOrStore(segKey{topic, act.ID}, true); seen {
		return
	}
	n.log.Error("active segment damaged before intact entries: writes to the topic are refused so that no acknowledged offset is reused; "+
		"copy the file aside, then run `floe cluster recover-segment --force --segment "+strconv.FormatUint(act.ID, 10)+" "+topic+"` to move writes to a new segment at the same base "+
		"(every entry of the segment, from base on, leaves the topic; the file is kept under abandoned/ for salvage with floe wal dump)",
		"topic", topic, "segment", act.ID, "file", seg.Path(), "base", act.Base,
		"readable_entries", seg.Count(), "first_unreadable_offset", act.Base+seg.Count(), "err", err)
}
