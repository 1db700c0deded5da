package meta

import (
	"encoding/json"
	"errors"
	"fmt"

	"floe/topicname"
)

// MaxRememberedRequests bounds the request table: the results of this many most recent
// commands with a request id are kept (in memory and in every Raft snapshot, some 80
// bytes each). A retry must reach the log before this many other such commands have
// applied, or it is answered with ErrOutcomeUnknown. Every member must use the same
// value: the table is replicated state.
const MaxRememberedRequests = 16384

// requestTable remembers the results of the most recent commands that carried a
// request id, in apply order, so that a retry of a committed command gets the first
// attempt's result instead of being applied again. It changes only in FSM.Apply and
// FSM.Restore, identically on every member.
type requestTable struct {
	results map[string]requestResult
	order   []string // request ids, oldest first
	// evicted is the Raft index of the newest result dropped from the table: a retry
	// whose first attempt may be at or below it cannot be told from a new request.
	evicted uint64
	limit   int
}

// requestResult is one remembered result: the Raft index of the command and what it
// answered. The error is kept as its sentinel's code and its message.
type requestResult struct {
	ID      string `json:"id"`
	Index   uint64 `json:"index"`
	Cursor  uint64 `json:"cursor,omitempty"`
	ErrCode string `json:"err_code,omitempty"`
	ErrMsg  string `json:"err,omitempty"`
}

func newRequestTable() *requestTable {
	return &requestTable{results: map[string]requestResult{}, limit: MaxRememberedRequests}
}

// resultCodes name the sentinels an FSM result can wrap, for the table's snapshot form.
// Codes are stored: never change one.
var resultCodes = []struct {
	code string
	err  error
}{
	{"no_topic", ErrNoTopic}, {"bad_topic", topicname.ErrInvalid}, {"bad_config", ErrBadConfig},
	{"stale_segment", ErrStaleSegment}, {"cursor_moved", ErrCursorMoved},
	{"not_leader", ErrNotRaftLeader}, {"bad_command", ErrBadCommand}, {"outcome_unknown", ErrOutcomeUnknown},
}

// lookup returns the remembered result of request id.
func (t *requestTable) lookup(id string) (*Result, bool) {
	r, ok := t.results[id]
	if !ok {
		return nil, false
	}
	res := &Result{Cursor: r.Cursor}
	if r.ErrMsg != "" || r.ErrCode != "" {
		res.Err = &rememberedError{msg: r.ErrMsg}
		for _, c := range resultCodes {
			if c.code == r.ErrCode {
				res.Err = &rememberedError{sentinel: c.err, msg: r.ErrMsg}
			}
		}
	}
	return res, true
}

// remember records the result of request id, applied at index, and drops the oldest
// results beyond the limit.
func (t *requestTable) remember(id string, index uint64, res *Result) {
	r := requestResult{ID: id, Index: index, Cursor: res.Cursor}
	if res.Err != nil {
		r.ErrMsg = res.Err.Error()
		for _, c := range resultCodes {
			if errors.Is(res.Err, c.err) {
				r.ErrCode = c.code
				break
			}
		}
	}
	t.results[id] = r
	t.order = append(t.order, id)
	for len(t.order) > t.limit {
		old := t.order[0]
		t.evicted = max(t.evicted, t.results[old].Index)
		delete(t.results, old)
		t.order = t.order[1:]
	}
}

// mayHaveForgotten reports whether a command first proposed after Raft index after
// may have committed and been dropped from the table since.
func (t *requestTable) mayHaveForgotten(after uint64) bool { return t.evicted > after }

// requestTableJSON is the table's form in a snapshot.
type requestTableJSON struct {
	Results []requestResult `json:"results"` // oldest first
	Evicted uint64          `json:"evicted,omitempty"`
}

func (t *requestTable) MarshalJSON() ([]byte, error) {
	j := requestTableJSON{Results: make([]requestResult, len(t.order)), Evicted: t.evicted}
	for i, id := range t.order {
		j.Results[i] = t.results[id]
	}
	return json.Marshal(j)
}

func (t *requestTable) UnmarshalJSON(b []byte) error {
	var j requestTableJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = *newRequestTable()
	t.evicted = j.Evicted
	for _, r := range j.Results {
		if r.ID == "" {
			return fmt.Errorf("%w: a remembered request without id", ErrBadCommand)
		}
		if _, dup := t.results[r.ID]; dup {
			return fmt.Errorf("%w: request %q remembered twice", ErrBadCommand, r.ID)
		}
		t.results[r.ID] = r
		t.order = append(t.order, r.ID)
	}
	return nil
}

// rememberedError is the error of a remembered result, handed to a retry: it has the
// first attempt's message and wraps its sentinel.
type rememberedError struct {
	sentinel error
	msg      string
}

func (e *rememberedError) Error() string { return e.msg }
func (e *rememberedError) Unwrap() error { return e.sentinel }
