# keychest-lined: make run starts the server, make test runs every test.
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run test test-faults bench vet clean deb

build:
	go build -ldflags "$(LDFLAGS)" -o bin/keychest-lined ./cmd/keychest-lined
	go build -ldflags "$(LDFLAGS)" -o bin/keychest-amp ./cmd/keychest-amp
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o bin/keychest-agent ./cmd/keychest-agent

run: build
	scripts/run.sh

test: build
	scripts/test.sh

# The fault tests (database down, kill -9, floods, hostile input) on their
# own PostgreSQL; scripts/test.sh runs them too.
test-faults: build
	go test -tags faults -count=1 -timeout 15m ./test/faults/

bench:
	scripts/bench.sh

# The Debian package, build/keychest-lined_<version>_<arch>.deb (nfpm; see
# packaging/ and docs/operations.md).
deb:
	packaging/build-deb.sh $(VERSION)

vet:
	go vet ./...

clean:
	rm -rf bin build
