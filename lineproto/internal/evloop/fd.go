// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"errors"
	"io"
	"net"
	"os"
	"reflect"
)

// netConnFromDetached turns what evio hands over on Detach into a net.Conn
// with deadlines. evio v1.0.8 gives a blocking file descriptor wrapped in an
// io.ReadWriteCloser with no deadlines, so a silent client could hold a
// goroutine forever. Its descriptor is duplicated onto Go's poller and the
// original is closed. Every test that detaches (TestIdleTimeout's detached
// half needs real deadlines) pins this to evio's internals: a new evio
// version that changes them fails them.
func netConnFromDetached(rwc io.ReadWriteCloser) (net.Conn, error) {
	fd := fdField(rwc)
	if fd < 0 {
		rwc.Close()
		return nil, errors.New("detached connection has no file descriptor")
	}
	return fileConn(fd)
}

// fileConn turns a socket descriptor into a net.Conn on Go's poller (a
// duplicate), and closes fd.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "socket")
	nc, err := net.FileConn(f)
	f.Close()
	return nc, err
}

// fdField reads the file descriptor that evio keeps in the unexported
// field fd of its connections (evio.Conn and the detached
// io.ReadWriteCloser are both pointers to such structs), or -1.
func fdField(v any) int { return fdOf(reflect.ValueOf(v)) }

// fdOf reads the field fd of the struct rv points to, or -1.
func fdOf(rv reflect.Value) int {
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return -1
	}
	fd := rv.Elem().FieldByName("fd")
	if !fd.IsValid() || fd.Kind() != reflect.Int || fd.Int() < 0 {
		return -1
	}
	return int(fd.Int())
}

// pollField reads the epoll descriptor of the evio loop that holds the
// connection (evio v1.0.8: conn.loop.poll.fd), or -1.
func pollField(ec any) int {
	rv := reflect.ValueOf(ec)
	for _, name := range []string{"loop", "poll"} {
		if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
			return -1
		}
		rv = rv.Elem().FieldByName(name)
		if !rv.IsValid() {
			return -1
		}
	}
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return -1
	}
	return fdOf(rv)
}
