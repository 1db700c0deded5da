package auth

// Op is what one operation needs: a role, on the request's topic or, for a
// cluster-wide operation, on the whole cluster (where only grants without a topic
// prefix count). Name appears in refusals ("role read cannot PUT").
type Op struct {
	Name    string // the Walrus command or the HTTP route pattern
	Need    Role   // None: anyone, with or without a token
	Cluster bool   // cluster-wide: a prefixed grant never suffices, whatever its role
}

// commands is what each Walrus command needs (wire.Request.Cmd). GET takes entries
// from the topic's shared cursor, which changes the topic's state; it still needs
// only Read, as consuming does in Kafka (a consumer with Read commits its group's
// offsets): GET is how Walrus clients consume, and a consumer that may not consume is
// of no use. The cursor is shared by design, so every reader of a topic can already
// take entries before the others; a token that must not do so gets no grant on it.
var commands = map[string]Op{
	"AUTH":     {Name: "AUTH", Need: None}, // presenting a token needs none
	"REGISTER": {Name: "REGISTER", Need: Write},
	"PUT":      {Name: "PUT", Need: Write},
	"PUTOFF":   {Name: "PUTOFF", Need: Write},
	"PUTBATCH": {Name: "PUTBATCH", Need: Write},
	"GET":      {Name: "GET", Need: Read},
	"READ":     {Name: "READ", Need: Read},
	"TAIL":     {Name: "TAIL", Need: Read},
	"STATE":    {Name: "STATE", Need: Read},
	"METRICS":  {Name: "METRICS", Need: Read, Cluster: true},
}

// routes is what each HTTP route needs, by its ServeMux pattern (node/http.go;
// http.Request.Pattern once routed). The health checks need nothing: container
// health checks (floe healthcheck) carry no token. Listing every topic, the cluster's
// metrics and the archive's objects are cluster-wide reads; a token limited to a
// prefix sees only its topics, one at a time. Creating a topic, with or without
// settings, needs Write on it: PUT on an existing topic changes nothing, so no
// route changes a topic's retention today (one that does will need Admin on the
// topic). recover-segment is an administration of one topic: a prefixed admin may
// run it on its own topics.
var routes = map[string]Op{
	"GET /healthz": {Need: None},
	"GET /readyz":  {Need: None},
	"GET /metrics": {Need: Read, Cluster: true},

	"/debug/pprof/":        {Need: Admin, Cluster: true},
	"/debug/pprof/cmdline": {Need: Admin, Cluster: true},
	"/debug/pprof/profile": {Need: Admin, Cluster: true},
	"/debug/pprof/symbol":  {Need: Admin, Cluster: true},
	"/debug/pprof/trace":   {Need: Admin, Cluster: true},

	"GET /v1/topics":                  {Need: Read, Cluster: true},
	"PUT /v1/topics/{topic}":          {Need: Write},
	"GET /v1/topics/{topic}":          {Need: Read},
	"PATCH /v1/topics/{topic}":        {Need: Admin}, // retention changes need admin
	"DELETE /v1/topics/{topic}":       {Need: Admin},
	"POST /v1/topics/{topic}/records": {Need: Write},
	"GET /v1/topics/{topic}/records":  {Need: Read},

	"GET /v1/cluster":                         {Need: Read, Cluster: true},
	"POST /v1/cluster/transfer-leadership":    {Need: Admin, Cluster: true},
	"DELETE /v1/cluster/members/{id}":         {Need: Admin, Cluster: true},
	"POST /v1/topics/{topic}/recover-segment": {Need: Admin},
	"GET /v1/archive/objects":                 {Need: Read, Cluster: true},
	"POST /v1/archive/verify":                 {Need: Admin, Cluster: true}, // reads whole objects
	"GET /v1/archive/orphans":                 {Need: Admin, Cluster: true}, // a sweep's dry run
	"POST /v1/archive/sweep":                  {Need: Admin, Cluster: true},

	// The console: its page and files are public (they hold no data; the page asks
	// for a token when the API wants one), what it shows needs read.
	"GET /{$}":                {Need: None},
	"GET /console/":           {Need: None},
	"GET /v1/nodes":           {Need: Read, Cluster: true},
	"GET /v1/archive/summary": {Need: Read, Cluster: true},
	"GET /v1/whoami":          {Need: None}, // says what the request's own token may
}

// ForCommand returns what the Walrus command cmd (the parsed command word) needs.
// An unknown command needs Admin on the cluster: a command added to the protocol
// and not to this table is refused to all but cluster admins, never open.
func ForCommand(cmd string) Op {
	if op, ok := commands[cmd]; ok {
		return op
	}
	return Op{Name: cmd, Need: Admin, Cluster: true}
}

// ForRoute returns what the HTTP route with the ServeMux pattern pattern (as
// registered, e.g. "POST /v1/topics/{topic}/records") needs. An unknown pattern
// needs Admin on the cluster, as in ForCommand; so does "", the pattern of a request
// no route matches (or the http.Request.Pattern of one not routed yet: a check
// placed before the ServeMux chose a handler refuses, rather than allows, all but
// cluster admins).
func ForRoute(pattern string) Op {
	op, ok := routes[pattern]
	if !ok {
		op = Op{Need: Admin, Cluster: true}
	}
	op.Name = pattern
	if pattern == "" {
		op.Name = "(no route)"
	}
	return op
}
