// Package seekabletest holds test data for the object format's benchmarks and tests.
package seekabletest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
)

// JSONEntry returns entry i of a stream of JSON-like log events of about 1 KiB each
// (timestamps, ids, HTTP fields, a cart, free text): what the benchmarks of the object
// format and of tiering compress and move, so that their ratios compare.
func JSONEntry(rng *rand.Rand, i int) []byte {
	services := []string{"checkout", "payments", "inventory", "search", "auth", "shipping"}
	levels := []string{"info", "info", "info", "debug", "warn", "error"}
	paths := []string{"/api/v1/orders", "/api/v1/cart/items", "/api/v2/search", "/healthz", "/api/v1/users/me", "/api/v1/payments/authorize"}
	agents := []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"okhttp/4.12.0", "curl/8.5.0",
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"ts":"2026-10-27T%02d:%02d:%02d.%03dZ","seq":%d,"level":%q,"service":%q,"host":"node-%02d.eu-west-1.internal",`,
		(i/3600000)%24, (i/60000)%60, (i/1000)%60, i%1000, i, levels[rng.IntN(len(levels))], services[rng.IntN(len(services))], rng.IntN(32))
	fmt.Fprintf(&b, `"trace_id":"%016x%016x","span_id":"%016x","user_id":%d,"session":"%08x",`,
		rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.IntN(1_000_000), rng.Uint32())
	fmt.Fprintf(&b, `"http":{"method":%q,"path":%q,"status":%d,"bytes":%d,"latency_ms":%.3f,"user_agent":%q,"remote_ip":"10.%d.%d.%d"},`,
		[]string{"GET", "POST", "PUT"}[rng.IntN(3)], paths[rng.IntN(len(paths))], []int{200, 200, 200, 201, 204, 404, 500}[rng.IntN(7)],
		rng.IntN(100000), rng.Float64()*250, agents[rng.IntN(len(agents))], rng.IntN(256), rng.IntN(256), rng.IntN(256))
	b.WriteString(`"cart":{"items":[`)
	for j := range 1 + rng.IntN(4) {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","qty":%d,"price_cents":%d,"currency":"EUR"}`, rng.IntN(999999), 1+rng.IntN(5), rng.IntN(20000))
	}
	b.WriteString(`]},"msg":"`)
	for b.Len() < 1000 {
		b.WriteString([]string{"request ", "completed ", "for ", "customer ", "order ", "with ", "retry ", "cache ", "miss ", "hit "}[rng.IntN(10)])
	}
	b.WriteString(`"}`)
	return b.Bytes()
}
