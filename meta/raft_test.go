package meta

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStream is a plain TCP raft.StreamLayer.
type tcpStream struct{ net.Listener }

func (s tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// TestSeededMemberKnowsItsIndex (issue 7 item 11): a member opened on a seeded data
// dir (floe restore --cluster; the snapshot is State alone and names no applied index)
// reports the seed's index as applied, so that its first export does not name index 0.
func TestSeededMemberKnowsItsIndex(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	dir := t.TempDir()
	state := `{"topics":{"t":{"name":"t","config":{},"segments":[{"id":1,"leader":1,"base":0,"state":"active","leader_index":7,"created_unix_ms":0}],"cursor":0}},"nodes":{},"cluster_id":"abc"}`
	if err := Seed(dir, 1, addr, []byte(state), 42); err != nil {
		t.Fatal(err)
	}
	m, err := Open(Config{NodeID: 1, Dir: dir, Advertise: addr, Stream: tcpStream{ln}, RaftLogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	index, _, err := m.FSM().Export()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.FSM().Topic("t"); !ok {
		t.Fatal("the seeded topic is missing")
	}
	if got := m.FSM().AppliedIndex(); got != 42 || index != 42 {
		t.Fatalf("after opening a seed at index 42: AppliedIndex %d, Export index %d", got, index)
	}
}
