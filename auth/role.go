package auth

import (
	"errors"
	"fmt"

	"floe/wire"
)

// Sentinel errors of the package.
var (
	// ErrBadFile: a token file breaks the format. Wrapped with the line number and
	// what is wrong, never with the line's content (see Parse).
	ErrBadFile = errors.New("auth: bad token file")
	// ErrBadRole: a role name is not read, write or admin.
	ErrBadRole = errors.New("auth: unknown role")
	// ErrBadPrefix: a topic prefix can match no valid topic name (see Line).
	ErrBadPrefix = errors.New("auth: invalid topic prefix")
	// ErrUnauthorized: every *Refusal is this (errors.Is). It is the protocol's
	// wire.ErrUnauthorized, which clients read as "ERR unauthorized: ...", and which
	// the nodes' error codes carry across the cluster.
	ErrUnauthorized = wire.ErrUnauthorized
)

// Role is what a grant lets a token do. Roles are ordered, each implying the ones
// below it: None < Read < Write < Admin. The zero value, None, grants nothing; it
// never appears in a token file.
type Role int

// The roles.
const (
	None  Role = iota // no rights; the zero value
	Read              // read records and state: READ, TAIL, GET, STATE, METRICS
	Write             // Read, and create topics and append: REGISTER, PUT, PUTOFF, PUTBATCH
	Admin             // Write, and operate the cluster: membership, recover-segment, sweeps
)

var roleNames = [...]string{None: "none", Read: "read", Write: "write", Admin: "admin"}

// ParseRole returns the role named s: "read", "write" or "admin", lower case. "none"
// is not a role a token can hold and is refused too. The error wraps ErrBadRole and
// quotes s: give it only the operator's own input (a flag), never a token file line.
func ParseRole(s string) (Role, error) {
	if r, ok := lookupRole(s); ok {
		return r, nil
	}
	return None, fmt.Errorf("%w %q (want read, write or admin)", ErrBadRole, s)
}

// lookupRole is ParseRole without an error that could echo s.
func lookupRole(s string) (Role, bool) {
	for r := Read; r <= Admin; r++ {
		if roleNames[r] == s {
			return r, true
		}
	}
	return None, false
}

// String returns the role's name as a token file spells it ("none" for None).
func (r Role) String() string {
	if r >= None && r <= Admin {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", int(r))
}
