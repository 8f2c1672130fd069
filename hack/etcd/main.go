// Command etcd is a thin wrapper around etcd's own entry point. etcd's server
// module carries replace directives, so `go install` of it is refused; a
// module of our own that imports etcdmain builds the same binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
