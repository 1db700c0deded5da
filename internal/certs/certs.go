package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// Errors of this package; they are wrapped with the facts, test them with errors.Is.
var (
	// ErrInvalidRequest: a CA or certificate request that cannot make a usable
	// certificate (no common name, no usage, no validity, a server certificate
	// without hosts).
	ErrInvalidRequest = errors.New("certs: invalid request")
	// ErrInvalidHost: a host is neither an IP address nor a DNS name.
	ErrInvalidHost = errors.New("certs: invalid host")
	// ErrNotCA: the certificate given to LoadCA may not sign others.
	ErrNotCA = errors.New("certs: not a CA certificate")
	// ErrKeyMismatch: the key given to LoadCA is not the private key of its
	// certificate.
	ErrKeyMismatch = errors.New("certs: key does not match certificate")
	// ErrCAExpired: the CA is past its NotAfter; nothing it issued or would issue
	// verifies.
	ErrCAExpired = errors.New("certs: CA expired")
	// ErrNoPEM: a file holds no PEM block of the type looked for.
	ErrNoPEM = errors.New("certs: no PEM block")
)

// clockSkew is how far in the past a certificate's NotBefore is set, so that a
// machine whose clock is behind the issuer's accepts it at once.
const clockSkew = 5 * time.Minute

// CA is a certificate authority: a self-signed CA certificate and its private key.
// It is immutable; its methods are safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// NewCA makes a CA with a new ECDSA P-256 key and a self-signed certificate named
// commonName, valid from five minutes ago for validFor. It signs leaf certificates
// only (MaxPathLen 0). Nothing is written: see KeyPEM, CertPEM and WritePair.
func NewCA(commonName string, validFor time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, fmt.Errorf("%w: a CA needs a common name", ErrInvalidRequest)
	}
	if validFor <= 0 {
		return nil, fmt.Errorf("%w: CA validity %v, want more than 0", ErrInvalidRequest, validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot generate the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cannot sign the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the CA certificate just made: %w", err)
	}
	return &CA{cert: cert, key: key}, nil
}

// LoadCA reads a CA from PEM files: certFile's first CERTIFICATE block, and keyFile's
// private key (PKCS #8 "PRIVATE KEY", or the older "EC PRIVATE KEY" and
// "RSA PRIVATE KEY"; other blocks such as "EC PARAMETERS" are skipped; encrypted keys
// are not supported). The certificate must be a CA's (ErrNotCA) and the key its own
// (ErrKeyMismatch). An expired CA loads; Issue refuses it.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA key: %w", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || (cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, fmt.Errorf("%w: %s (subject %q, IsCA %v, KeyUsage %#x)", ErrNotCA, certFile, cert.Subject, cert.IsCA, cert.KeyUsage)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: %s is not the key of %s (subject %q)", ErrKeyMismatch, keyFile, certFile, cert.Subject)
	}
	return &CA{cert: cert, key: key}, nil
}

func parseCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%w: no CERTIFICATE", ErrNoPEM)
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%w: no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY (an encrypted key is not supported)", ErrNoPEM)
		}
		var key any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			var k *rsa.PrivateKey
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
			key = k
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot parse the %s: %w", b.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T cannot sign", key)
		}
		return signer, nil
	}
}

// Certificate returns the CA's certificate. It is shared: the caller must not
// modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Pool returns a new pool holding the CA's certificate only, for a tls.Config's
// RootCAs (a client verifying servers) or ClientCAs (a server verifying clients).
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// CertPEM returns the CA's certificate as a PEM "CERTIFICATE" block: the ca.crt that
// every node and client trusts.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// KeyPEM returns the CA's private key as a PEM "PRIVATE KEY" block (PKCS #8): the
// secret whoever holds can issue certificates the cluster trusts.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Request describes a certificate for Issue to make.
type Request struct {
	// CommonName is the certificate's subject name: the node's or client's name.
	// Required. Hostname verification ignores it; it names the peer in logs.
	CommonName string
	// Hosts are the names the certificate is valid for, each an IP address (into
	// IPAddresses, e.g. "127.0.0.1", "::1") or a DNS name (into DNSNames, e.g.
	// "node1", "localhost", "*.floe.internal"). Only these verify: a node reached on
	// loopback needs "127.0.0.1" (or "localhost") listed. Required for a server
	// certificate.
	Hosts []string
	// ValidFor is how long the certificate is valid from now; cut to the CA's own
	// NotAfter. Required.
	ValidFor time.Duration
	// Client and Server set the extended key usages ClientAuth and ServerAuth; at
	// least one is required. A node's certificate has both: a node dials its peers
	// and accepts their connections.
	Client, Server bool
}

// Issue makes a new ECDSA P-256 key and a certificate for it signed by the CA, and
// returns both PEM encoded: the certificate as a "CERTIFICATE" block, the key as a
// "PRIVATE KEY" block (PKCS #8). tls.X509KeyPair takes them as they are. A request
// that cannot make a usable certificate fails with ErrInvalidRequest or
// ErrInvalidHost, an expired CA with ErrCAExpired.
func (ca *CA) Issue(req Request) (certPEM, keyPEM []byte, err error) {
	if req.CommonName == "" {
		return nil, nil, fmt.Errorf("%w: no common name", ErrInvalidRequest)
	}
	if req.ValidFor <= 0 {
		return nil, nil, fmt.Errorf("%w: %q: validity %v, want more than 0", ErrInvalidRequest, req.CommonName, req.ValidFor)
	}
	if !req.Client && !req.Server {
		return nil, nil, fmt.Errorf("%w: %q: neither a client nor a server certificate", ErrInvalidRequest, req.CommonName)
	}
	if req.Server && len(req.Hosts) == 0 {
		return nil, nil, fmt.Errorf("%w: %q: a server certificate needs at least one host", ErrInvalidRequest, req.CommonName)
	}
	var ips []net.IP
	var names []string
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if err := checkDNSName(h); err != nil {
			return nil, nil, fmt.Errorf("%w %q of %q: %v", ErrInvalidHost, h, req.CommonName, err)
		}
		names = append(names, h)
	}
	var usage []x509.ExtKeyUsage
	if req.Server {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}

	now := time.Now()
	if !now.Before(ca.cert.NotAfter) {
		return nil, nil, fmt.Errorf("%w: %q expired at %s", ErrCAExpired, ca.cert.Subject.CommonName, ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notBefore, notAfter := now.Add(-clockSkew), now.Add(req.ValidFor)
	if notBefore.Before(ca.cert.NotBefore) {
		notBefore = ca.cert.NotBefore
	}
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot generate a key for %q: %w", req.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              names,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot sign the certificate of %q: %w", req.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot encode the key of %q: %w", req.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// newSerial returns a random serial number of 128 bits, never 0 (RFC 5280 wants it
// positive).
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("cannot draw a serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// checkDNSName accepts what crypto/x509 verifies a host name against: dot-separated
// labels of letters, digits, '-' and '_' (common outside the public web, e.g. in
// container names), none empty or longer than 63 bytes or starting or ending with
// '-', at most 253 bytes in all, the first label possibly the wildcard "*". A name
// whose last label is all digits is refused: it is a mistyped IP address.
func checkDNSName(h string) error {
	if h == "" {
		return errors.New("empty")
	}
	if len(h) > 253 {
		return fmt.Errorf("%d bytes long, at most 253", len(h))
	}
	labels := strings.Split(strings.TrimPrefix(h, "*."), ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("label %q: want 1 to 63 bytes", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not allowed in a DNS name", c)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("neither an IP address nor a DNS name (its last label is a number)")
	}
	return nil
}
