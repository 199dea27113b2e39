package lineproto

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
func fdField(v any) int {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return -1
	}
	fd := rv.Elem().FieldByName("fd")
	if !fd.IsValid() || fd.Kind() != reflect.Int || fd.Int() < 0 {
		return -1
	}
	return int(fd.Int())
}
