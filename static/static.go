// Package static holds the browser assets PeekShot serves under /static/:
// the vendored htmx, the stylesheet, the small script that wires htmx to
// the page, and icons. Everything is embedded in the binary; nothing is
// fetched from elsewhere at run time.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sync"
)

//go:embed css js icons favicon.svg
var files embed.FS

// FS is the asset tree, rooted at /static/.
func FS() fs.FS { return files }

var versions sync.Map // name → short content hash

// URL is the address of an asset with a content hash in its query, so it
// can be cached for a long time and still change with each release.
func URL(name string) string {
	if v, ok := versions.Load(name); ok {
		return "/static/" + name + "?v=" + v.(string)
	}
	b, err := files.ReadFile(name)
	if err != nil {
		return "/static/" + name
	}
	sum := sha256.Sum256(b)
	v := hex.EncodeToString(sum[:6])
	versions.Store(name, v)
	return "/static/" + name + "?v=" + v
}
