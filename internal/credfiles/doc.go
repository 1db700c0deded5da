// Package credfiles holds the credentials a node reads from files an operator owns:
// TLS key pairs with their CA bundles, and the cluster's shared secret. Each is
// re-read on demand (Reload, which the agent calls on SIGHUP) and when its files
// change (Changed, polled by the node), without a restart.
//
// A reload that fails keeps what was loaded before and returns the error: a
// certificate copied over half-way, or a secret file emptied by mistake, never leaves
// a node without credentials (refusing every connection) nor without checks
// (accepting every connection). Connections made before a reload are not re-checked:
// TLS and the secret handshake authenticate a connection when it opens.
//
// The cluster port's TLS (ClusterServer, ClusterClient) is mutual and trusts the
// CA, not host names: every certificate the cluster CA issued with the right key
// usage is a member, whatever address it dials from or is dialled at. That is why the
// cluster CA must be one for this cluster only, never a CA that signs other services.
// The client port's TLS (Server) is ordinary server TLS, with client certificates
// required when a client CA is given.
package credfiles
