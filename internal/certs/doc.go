// Package certs makes the certificates of floe's TLS: a certificate authority (CA) and
// the certificates it issues to nodes and clients. It is what `floe certs` runs, and
// what tests use to get a CA, node and client certificates in memory. Operators with
// their own PKI need none of it: floe's TLS flags take any PEM files.
//
// # What is issued
//
// Every key is ECDSA P-256 (understood by every TLS stack floe is likely to meet).
//
//	certificate  BasicConstraints      KeyUsage                 ExtKeyUsage               SANs
//	-----------  --------------------  -----------------------  ------------------------  ---------------
//	CA           CA, MaxPathLen 0      CertSign, CRLSign        (none)                    (none)
//	node         not a CA              DigitalSignature         ServerAuth + ClientAuth   Request.Hosts
//	client       not a CA              DigitalSignature         ClientAuth                Request.Hosts
//
// A node certificate carries both usages because a node both accepts connections (as
// a server) and dials its peers (as a client) on the cluster port, where both sides
// verify each other. MaxPathLen 0 means the CA signs leaves only, never another CA.
// Serial numbers are 128 random bits. NotBefore is five minutes in the past, so a
// certificate is valid at once on a machine whose clock is a little behind; a leaf
// never outlives its CA (NotAfter is cut to the CA's).
//
// # Files
//
// A directory written by `floe certs`, one pair per name (WritePair, CertPath,
// KeyPath):
//
//	DIR/            0700 when floe certs creates it
//	  ca.crt        0644  the CA certificate: every node's --cluster-tls-ca and --tls-client-ca
//	  ca.key        0600  the CA's private key: the secret; whoever holds it is trusted
//	  NAME.crt      0644  a node's or client's certificate (PEM "CERTIFICATE")
//	  NAME.key      0600  its private key (PEM "PRIVATE KEY", PKCS #8)
//
// Each file is published whole (fsutil.WriteFileMode: temporary file, fsync, rename,
// fsync of the directory), with its mode set before any byte is written: a key is
// never readable by others, not even for a moment.
//
// A CA is immutable once made: its methods are safe for concurrent use.
package certs
