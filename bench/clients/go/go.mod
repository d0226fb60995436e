module beussbench

go 1.19

require (
	beuss v0.0.0
	gopkg.in/redis.v5 v5.2.9
)

// The client under test, from this repository.
replace beuss => ../../../clients/go

// go-redis v5 (gopkg.in/redis.v5), the go-redis this machine can install: run.sh
// copies Debian's golang-gopkg-redis.v5-dev here (no module proxy is reachable).
replace gopkg.in/redis.v5 => ./third_party/redis.v5
