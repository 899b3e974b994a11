# Warm Python for codelm-sandbox: started once inside a fully isolated
# sandbox, it forks per job; each fork enters fresh mount, PID, network, IPC
# and UTS namespaces, mounts its own /sandbox, /tmp and /proc, applies
# rlimits, drops every capability, installs the seccomp filter and only then
# runs the job's program as __main__, so jobs skip interpreter start-up (see
# zygote.rs).
#
# Protocol on fd 0 (a Unix stream socket from the parent): first a
# length-prefixed seccomp BPF program; then, per job, one byte carrying five
# descriptors: stdin, stdout, stderr, status pipe, and a per-job socket.
# On the per-job socket: a length-prefixed JSON spec in; the job's init
# sends one byte with SCM_CREDENTIALS (so the parent learns its host pid)
# and waits for a go byte. The status pipe receives the same 64-byte report
# as from the Rust supervisor.

import atexit
import ctypes
import builtins
import importlib.machinery
import json
import os
import resource
import types
import signal
import socket
import struct
import sys
import threading
import traceback

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECCOMP = 38, 24, 22
PR_SET_PDEATHSIG = 1
SECCOMP_MODE_FILTER = 2
SYS_CAPSET = 126  # x86_64
KIND_DONE, KIND_FAILED = 1, 2


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("parent closed the socket")
        data += chunk
    return data


def recv_blob(sock):
    (n,) = struct.unpack("<Q", recv_exact(sock, 8))
    return recv_exact(sock, n)


def mount(source, target, fstype, flags, options):
    check(LIBC.mount(source, target, fstype, flags, options), f"mount {target!r}")


def report(status_fd, kind, stage=0, errno=0, wait_status=0, cpu_us=0, maxrss_kb=0):
    os.write(status_fd, struct.pack("<8q", kind, stage, errno, 0, 0, wait_status,
                                    cpu_us, maxrss_kb))


def job_init(fds, bpf):
    """Runs in a fork of the zygote; becomes PID 1 of the job's namespaces."""
    stdin_fd, stdout_fd, stderr_fd, status_fd, sock_fd = fds
    sock = socket.socket(fileno=sock_fd)
    spec = json.loads(recv_blob(sock))
    check(LIBC.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
                       | CLONE_NEWUTS), "unshare")
    if os.fork() != 0:
        os._exit(0)
    # PID 1 of the new namespace: its exit kills the job's whole tree.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    credentials = struct.pack("iII", os.getpid(), os.getuid(), os.getgid())
    sock.sendmsg([b"r"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, credentials)])
    if recv_exact(sock, 1) != b"g":
        os._exit(1)
    sock.close()
    size = spec["tmpfs_bytes"]
    for target, mode in (("/sandbox", "755"), ("/tmp", "1777"), ("/dev/shm", "1777")):
        options = f"size={size},mode={mode}".encode()
        mount(b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options)
    mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    socket.sethostname("sandbox")
    for name, data in spec["files"]:
        with open(os.path.join("/sandbox", name), "xb") as f:
            f.write(data.encode("latin-1"))
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(err_read)
        run_program(spec, stdin_fd, stdout_fd, stderr_fd, err_write, bpf)
    for fd in (stdin_fd, stdout_fd, stderr_fd, err_write):
        os.close(fd)
    failure = os.read(err_read, 4096)
    while True:
        reaped, wait_status = os.waitpid(-1, 0)
        if reaped == pid:
            break
    if failure:
        errno, message = json.loads(failure)
        report(status_fd, KIND_FAILED, stage=spec["failure_stage"], errno=errno)
        os._exit(1)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_us = int((usage.ru_utime + usage.ru_stime) * 1e6)
    report(status_fd, KIND_DONE, wait_status=wait_status, cpu_us=cpu_us,
           maxrss_kb=usage.ru_maxrss)
    os._exit(0)


def confine(spec, bpf):
    """Limits, no capabilities, no_new_privs, seccomp: as before execve."""
    os.chdir("/sandbox")
    os.environ.clear()
    os.environ.update(spec["env"])
    for resource_id, soft, hard in spec["rlimits"]:
        resource.setrlimit(resource_id, (soft, hard))
    for cap in range(64):
        LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = CapHeader(0x20080522, 0)
    data = (CapData * 2)()
    check(LIBC.syscall(SYS_CAPSET, ctypes.byref(header), ctypes.byref(data)), "capset")
    check(LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    program = ctypes.create_string_buffer(bpf, len(bpf))
    fprog = SockFprog(len(bpf) // 8, ctypes.cast(program, ctypes.c_void_p))
    check(LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
          "seccomp")


def set_title(words):
    """Rewrites our command line (the zygote was started with room to
    spare) so that `ps` and /proc/PID/cmdline show the job's program."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end
    title = b"\0".join(word.encode() for word in words)[: end - start - 1]
    ctypes.memmove(start, title.ljust(end - start, b"\0"), end - start)


def run_program(spec, stdin_fd, stdout_fd, stderr_fd, err_write, bpf):
    try:
        set_title(["python3", spec["main"]] + spec["args"])
        for target, fd in ((0, stdin_fd), (1, stdout_fd), (2, stderr_fd)):
            os.dup2(fd, target)
        keep = {0, 1, 2, err_write}
        for fd in os.listdir("/proc/self/fd"):
            if int(fd) not in keep:
                try:
                    os.close(int(fd))
                except OSError:
                    pass
        confine(spec, bpf)
    except BaseException as error:
        errno = getattr(error, "errno", 0) or 0
        os.write(err_write, json.dumps([errno, str(error)]).encode())
        os._exit(127)
    os.close(err_write)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = [spec["main"]] + spec["args"]
    sys.path[0] = "/sandbox"
    os._exit(execute(os.path.join("/sandbox", spec["main"])))


def execute(main):
    """Runs `main` as __main__ and returns the exit status python3 would."""
    code = 0
    module = types.ModuleType("__main__")
    module.__file__ = main
    module.__builtins__ = builtins
    module.__loader__ = importlib.machinery.SourceFileLoader("__main__", main)
    module.__spec__ = None
    module.__cached__ = None
    sys.modules["__main__"] = module
    try:
        with open(main, "rb") as f:
            source = f.read()
    except OSError as error:
        print(f"python3: can't open file {main!r}: [Errno {error.errno}] {error.strerror}",
              file=sys.stderr)
        return 2
    try:
        exec(compile(source, main, "exec", dont_inherit=True), module.__dict__)
    except SystemExit as exit:
        code = exit_code(exit.code)
    except BaseException as error:
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != main:
            tb = tb.tb_next
        traceback.print_exception(type(error), error, tb or error.__traceback__)
        code = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    except SystemExit as exit:
        code = exit_code(exit.code)
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            code = code or 120
    return code


def exit_code(value):
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def main():
    control = socket.socket(fileno=0)
    bpf = recv_blob(control)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1, 5)
        if not message:
            os._exit(0)
        if len(fds) == 5 and os.fork() == 0:
            control.close()
            try:
                job_init(fds, bpf)
            except BaseException:
                traceback.print_exc()
            os._exit(3)
        for fd in fds:
            os.close(fd)


main()
