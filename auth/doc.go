// Package auth is floe's client authentication and authorization: the token file
// given by --auth-file, what each token may do, and what each client operation
// needs. It knows nothing of connections or Raft; the node's Walrus and HTTP servers
// ask it one question per request. Without --auth-file the node makes no Source and
// asks nothing: everything works as without authentication.
//
// # The token file
//
// One grant a line; "#" starts a comment that runs to the end of the line; blank
// lines are skipped; fields are separated by spaces or tabs:
//
//	# operators
//	sha256:b412070a90bed16ce27b673e321f76541cd32d640cf416f2c143b4da3a81363f admin
//	# dashboards: read everything
//	sha256:b704c41247c06d0b05dbede12cf4740951dee05b938331283bd498f6bf9889f7 read
//	# ci pipeline: appends to the orders.* topics
//	sha256:c164b533b1a33f8dc78622af2bf5eb71a730fd636614cc95d2f7603554afbcc0 write orders.
//	       \_______________________ SHA-256 of the token _________________/ \___/ \_____/
//	       64 hex digits, either case                                       role  topic prefix
//	                                                                              (optional)
//
// The file holds digests, never tokens: reading it does not let anyone in. floe auth
// hash prints the line for a token read from stdin; floe auth token makes a new one.
//
// Parsing is strict (Parse): one bad line fails the whole file, with an error that
// names the line number and what is wrong and never quotes the line, since an
// operator may have pasted a raw token there. A token may appear on several lines:
// its grants are the union of theirs. An empty file (or one of comments only) is
// valid and refuses every token; the agent should warn about it (Table.Len is 0).
//
// # Roles and prefixes
//
// Roles are ordered, each implying the ones below: read < write < admin.
//
//	read   READ, TAIL, GET, STATE, METRICS; GET of records and state over HTTP
//	write  read, and REGISTER (it creates the topic), PUT, PUTOFF, PUTBATCH
//	admin  write, and membership changes, transfer-leadership, recover-segment,
//	       sweeps, and (when a route for them exists) retention changes
//
// ForCommand and ForRoute hold the whole table of what each Walrus command and each
// HTTP route needs; what is not in it needs admin on the cluster, so a new operation
// is closed until it is given a rule. GET needs read although it moves the topic's
// shared cursor: it is how Walrus clients consume (as Kafka lets a consumer with Read
// commit its offsets), and the cursor is shared by every reader by design.
//
// A grant without a prefix covers every topic and the cluster. A grant with a prefix
// covers the topics whose names start with it, as plain strings ("orders" covers
// "orders-eu" and "ordersX"; write "orders." to mean the orders.* family), and no
// cluster-wide operation (METRICS, listing topics, membership, sweeps): a prefixed
// admin administers its own topics (recover-segment), never the cluster. A prefix
// must be able to begin a valid topic name (topicname.Validate): 1 to
// topicname.MaxLen characters of A-Z a-z 0-9 . _ -. Anything else could never match
// and is refused as the typo it must be.
//
// # Checking a request
//
// A connection that presents a token keeps its Credential, the token's digest,
// never the token nor its rights. Every request is checked against the table in
// force:
//
//	_, err := src.Current().Authorize(cred, auth.ForCommand(req.Cmd), req.Topic)
//	_, err := src.Current().Authorize(auth.FromBearer(r.Header.Get("Authorization")), auth.ForRoute(r.Pattern), r.PathValue("topic"))
//
// (r.Pattern is set in a handler the ServeMux chose; a wrapper around the whole mux
// finds the pattern with mux.Handler(r), and an unmatched request's "" needs admin.)
// A refusal is a *Refusal: 401 for no token or an unknown one, 403 for a known token
// whose grants do not cover the request; on the Walrus protocol both are the reply
// "ERR unauthorized: <reason>". No refusal, log line (Principal.String,
// Credential.String: "sha256:ab12cd34…") or error of this package holds a token.
//
// # Reloading
//
// Source holds the table in force behind an atomic pointer. Reload (on SIGHUP)
// parses the file again; a file that fails to parse leaves the table in force, so a
// typo neither locks everyone out nor opens the door. Since connections keep digests
// and not rights, a token removed from the file is refused from the next request
// after the reload, also on a connection that authenticated before it.
package auth
