# Warm Python for codelm-sandbox (see zygote.rs). Started once inside a
# fully isolated sandbox, it forks *workers*; each worker forks one process
# per job:
#
#   zygote --fork--> worker: PID 1 of a fresh PID namespace, in its own
#                    session and its own mount, network, IPC and UTS
#                    namespaces, with its own /proc and its own tmpfs at
#                    /sandbox, /tmp and /dev/shm; runs jobs one at a time
#          worker --fork--> job: its own session and a fresh IPC namespace;
#                   rlimits, no capabilities, no_new_privs, seccomp; then
#                   the job's file runs as __main__
#
# After each job the worker kills and reaps every process left in its PID
# namespace and empties /sandbox, /tmp and /dev/shm before it reports, so
# the next job on the worker finds no process, file, socket or IPC object
# of the last one. Jobs on one worker share its network and UTS namespaces,
# which hold nothing once their processes are gone (no usable interface,
# and jobs have no capabilities to change them). A fresh mount namespace
# and tmpfs per job would cost more than everything else a job does.
#
# The forks use libc's fork(), not os.fork(): the zygote is single-threaded,
# and os.fork()'s after-fork hooks (re-initialising threading, reseeding
# random) write to a few hundred shared pages, which made each fork cost
# four times as much. The worker reseeds `random` before each job's fork,
# so that every job starts with a fresh seed, as a fresh interpreter would.
#
# Protocol. On fd 0 (a Unix stream socket from the parent): first a
# length-prefixed seccomp BPF program; then, per worker, one byte carrying
# the worker's own socket. The worker sends one byte with SCM_CREDENTIALS
# on it (so the parent learns its host pid and puts it in a cgroup) and
# waits for a go byte. Then, per job: one byte carrying four descriptors
# (stdin, stdout, stderr, status pipe) and a length-prefixed JSON spec. The
# status pipe receives the same 64-byte report as from the Rust supervisor.

import _signal
import _socket
import array
import atexit
import ctypes
import builtins
import gc
import importlib
import importlib.machinery
import json
import os
import resource
import types
import signal
import struct
import sys
import threading

LIBC = ctypes.CDLL(None, use_errno=True)
PREPARED = None  # set by main()
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 2, 4, 8, 32
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECCOMP = 38, 24, 22
SECCOMP_MODE_FILTER = 2
SYS_CAPSET = 126  # x86_64
KIND_DONE, KIND_FAILED = 1, 2
# Imported once here so that jobs find them loaded: the standard modules
# that benchmark programs (HumanEval, MBPP) import, `typing` above all
# (about 9 ms to import cold). Not `hashlib` (one HumanEval task) nor
# `datetime` (none): each module here lengthens the zygote's start and
# adds pages that every job's fork copies and every exit frees.
PRELOAD = ("typing", "math", "cmath", "random", "copy", "string", "collections",
           "heapq", "itertools", "functools", "bisect", "operator", "array", "re")


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class Prepared:
    """What a job needs from ctypes and /proc, built once in the zygote:
    forks then only make calls, and write to few shared pages."""

    def __init__(self, bpf):
        self.unshare, self.mount, self.prctl = LIBC.unshare, LIBC.mount, LIBC.prctl
        self.umount2, self.kill = LIBC.umount2, LIBC.kill
        self.syscall, self.memmove = LIBC.syscall, ctypes.memmove
        self.cap_header = CapHeader(0x20080522, 0)
        self.cap_data = (CapData * 2)()
        self.cap_args = (ctypes.byref(self.cap_header), ctypes.byref(self.cap_data))
        self.bpf = ctypes.create_string_buffer(bpf, len(bpf))
        self.fprog = SockFprog(len(bpf) // 8, ctypes.cast(self.bpf, ctypes.c_void_p))
        self.fprog_ref = ctypes.byref(self.fprog)
        # Where our command line lives (the same in every fork).
        fd = os.open("/proc/self/stat", os.O_RDONLY)
        fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
        os.close(fd)
        self.title_start, self.title_end = int(fields[45]), int(fields[46])


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


def recv_fds(sock, max_fds):
    """One byte and the descriptors sent with it (`socket.recv_fds`,
    without importing `socket`)."""
    fds = array.array("i")
    message, ancillary, _, _ = sock.recvmsg(1, _socket.CMSG_LEN(max_fds * fds.itemsize))
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return message, list(fds)


def recv_blob(sock):
    (n,) = struct.unpack("<Q", recv_exact(sock, 8))
    return recv_exact(sock, n)


def mount(source, target, fstype, flags, options):
    check(PREPARED.mount(source, target, fstype, flags, options), f"mount {target!r}")


def report(status_fd, kind, stage=0, errno=0, wait_status=0, cpu_us=0, maxrss_kb=0):
    os.write(status_fd, struct.pack("<8q", kind, stage, errno, 0, 0, wait_status,
                                    cpu_us, maxrss_kb))


def worker(sock_fd):
    """Runs in a fork of the zygote, as PID 1 of a fresh PID namespace."""
    # Fill fd 0, which held the zygote's socket, so that no descriptor a
    # job needs lands on 0 to 2, where its stdio goes.
    os.open("/dev/null", os.O_RDONLY)
    # A session of its own: a job's kill(0, ...) must not reach the zygote.
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    check(LIBC.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    _socket.sethostname("sandbox")
    sock = _socket.socket(fileno=sock_fd)
    credentials = struct.pack("iII", os.getpid(), os.getuid(), os.getgid())
    sock.sendmsg([b"r"], [(_socket.SOL_SOCKET, _socket.SCM_CREDENTIALS, credentials)])
    if recv_exact(sock, 1) != b"g":
        os._exit(1)
    dirs = JobDirs()
    # Each job's program gets PID 2, as in a cold sandbox: everything of
    # the previous job is gone, so the worker can set the last PID back.
    try:
        last_pid = os.open("/proc/sys/kernel/ns_last_pid", os.O_WRONLY)
    except OSError:
        last_pid = None  # PIDs then simply count up.
    env = None
    while True:
        message, fds = recv_fds(sock, 4)
        if not message or len(fds) != 4:
            os._exit(0)
        spec = json.loads(recv_blob(sock))
        if spec["env"] != env:
            env = spec["env"]
            os.environ.clear()
            os.environ.update(env)
        if last_pid is not None:
            os.pwrite(last_pid, b"1", 0)
        run_job(spec, fds, dirs)


class JobDirs:
    """The worker's own tmpfs mounts at /sandbox, /tmp and /dev/shm, which
    it empties after each job."""

    DIRS = ((b"/sandbox", "755"), (b"/tmp", "1777"), (b"/dev/shm", "1777"))

    def __init__(self):
        self.size = None

    def mount(self, target, mode, flags=0):
        options = f"size={self.size},mode={mode}".encode()
        mount(b"tmpfs", target, b"tmpfs", flags | MS_NOSUID | MS_NODEV, options)

    def prepare(self, size):
        """Mounts the directories, or resizes them for this job's limit."""
        if self.size != size:
            flags = 0 if self.size is None else MS_REMOUNT
            self.size = size
            for target, mode in self.DIRS:
                self.mount(target, mode, flags)

    def clear(self):
        """Removes what the last job left. A directory that resists (too
        deep, say) or whose own mode or extended attributes the job changed
        is replaced by a fresh mount."""
        for target, mode in self.DIRS:
            try:
                empty_dir(target)
                is_pristine = (os.stat(target).st_mode & 0o7777 == int(mode, 8)
                               and not os.listxattr(target))
            except (OSError, RecursionError):
                is_pristine = False
            if not is_pristine:
                check(PREPARED.umount2(target, MNT_DETACH), f"umount {target!r}")
                self.mount(target, mode)


def empty_dir(path):
    """Deletes everything in a directory; nothing of the job runs any more.
    (`shutil.rmtree` would cost every worker a few milliseconds to import,
    with the compression modules it loads.)"""
    with os.scandir(path) as entries:
        for entry in list(entries):
            if entry.is_dir(follow_symlinks=False):
                empty_dir(entry.path)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)


def run_job(spec, fds, dirs):
    """Runs one job, then kills whatever it left and reports.

    What the job needs is prepared here, before the fork: every Python
    object the job process touches costs it a copy of that object's page
    (a few microseconds each, and the job is a few hundred pages), while
    the worker's own pages are its own again once the last job is gone."""
    stdin_fd, stdout_fd, stderr_fd, status_fd = fds
    dirs.prepare(spec["tmpfs_bytes"])
    try:
        source = write_files(spec)
    except OSError as error:
        for fd in (stdin_fd, stdout_fd, stderr_fd):
            os.close(fd)
        dirs.clear()
        finish(status_fd, KIND_FAILED, stage=spec["failure_stage"], errno=error.errno or 0)
        return
    title = b"\0".join(word.encode() for word in ["python3", spec["main"]] + spec["args"])
    # Reseeded for each job, as a fresh interpreter would be.
    if "random" in sys.modules:
        sys.modules["random"].seed()
    err_read, err_write = os.pipe()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pid = fork()
    if pid == 0:
        os.close(err_read)
        run_program(spec, source, title, stdin_fd, stdout_fd, stderr_fd, err_write)
    for fd in (stdin_fd, stdout_fd, stderr_fd, err_write):
        os.close(fd)
    failure = os.read(err_read, 4096)
    os.close(err_read)
    while True:
        reaped, wait_status, usage = os.wait4(-1, 0)
        if reaped == pid:
            break
    # PID 1 signals everyone else in its namespace: all the job's processes
    # (zombies included). Usually there are none, and no exception to raise.
    if PREPARED.kill(-1, _signal.SIGKILL) == 0:
        try:
            while True:
                os.waitpid(-1, 0)
        except ChildProcessError:
            pass
    dirs.clear()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if failure:
        errno, message = json.loads(failure)
        finish(status_fd, KIND_FAILED, stage=spec["failure_stage"], errno=errno)
    else:
        finish(status_fd, KIND_DONE, wait_status=wait_status, cpu_us=int(cpu_s * 1e6),
               maxrss_kb=usage.ru_maxrss)


def finish(status_fd, kind, **fields):
    """Sends the job's report and closes its status pipe."""
    try:
        report(status_fd, kind, **fields)
    except OSError:
        pass  # The parent gave up on the job.
    os.close(status_fd)


def write_files(spec):
    """Writes the job's files into /sandbox. Returns the main file's
    bytes, or None when it is not one of them."""
    source = None
    for name, data in spec["files"]:
        data = data.encode("latin-1")
        fd = os.open(os.path.join("/sandbox", name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)
        if name == spec["main"]:
            source = data
    return source


def confine(spec):
    """Limits, no capabilities, no_new_privs, seccomp: as before execve. (The
    bounding set was emptied once, in the zygote; the worker set the
    environment.)"""
    os.chdir("/sandbox")
    for resource_id, soft, hard in spec["rlimits"]:
        resource.setrlimit(resource_id, (soft, hard))
    check(PREPARED.syscall(SYS_CAPSET, *PREPARED.cap_args), "capset")
    check(PREPARED.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    check(PREPARED.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PREPARED.fprog_ref, 0, 0),
          "seccomp")


def set_title(title):
    """Rewrites our command line (the zygote was started with room to
    spare) so that `ps` and /proc/PID/cmdline show the job's program."""
    size = PREPARED.title_end - PREPARED.title_start
    PREPARED.memmove(PREPARED.title_start, title[: size - 1].ljust(size, b"\0"), size)


def run_program(spec, source, title, stdin_fd, stdout_fd, stderr_fd, err_write):
    """The job process: its own session and IPC namespace, confined, then
    the program (`source`, or read from its file when None)."""
    try:
        os.setsid()
        check(PREPARED.unshare(CLONE_NEWIPC), "unshare")
        set_title(title)
        for target, fd in ((0, stdin_fd), (1, stdout_fd), (2, stderr_fd)):
            os.dup2(fd, target)
        # Everything else goes: the worker's socket and the other ends.
        os.closerange(3, err_write)
        os.closerange(err_write + 1, 1 << 20)
        confine(spec)
    except BaseException as error:
        errno = getattr(error, "errno", 0) or 0
        os.write(err_write, json.dumps([errno, str(error)]).encode())
        os._exit(127)
    os.close(err_write)
    gc.enable()
    # The C function: `signal.signal` converts to and from enums, which
    # touches many objects.
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    sys.argv = [spec["main"]] + spec["args"]
    sys.path[0] = "/sandbox"
    os._exit(execute(os.path.join("/sandbox", spec["main"]), source))


def execute(main, source):
    """Runs `main` (its `source` if not None) as __main__ and returns the
    exit status python3 would."""
    code, interrupted = 0, False
    module = types.ModuleType("__main__")
    module.__file__ = main
    module.__builtins__ = builtins
    module.__loader__ = importlib.machinery.SourceFileLoader("__main__", main)
    module.__spec__ = None
    module.__cached__ = None
    sys.modules["__main__"] = module
    try:
        if source is None:
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
        # Only the program's frames, as python3 shows them: none at all
        # for an error in compiling it.
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != main:
            tb = tb.tb_next
        print_uncaught(error.with_traceback(tb))
        code = 1
        interrupted = isinstance(error, KeyboardInterrupt)
    try:
        # As at interpreter exit. With only the main thread and no
        # threading atexit hooks, _shutdown() would join nothing.
        if threading.active_count() > 1 or threading._threading_atexits:
            threading._shutdown()
        atexit._run_exitfuncs()
    except SystemExit as exit:
        code = exit_code(exit.code)
    except BaseException as error:
        print_uncaught(error)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            code = code or 120
    if interrupted:
        # python3 ends by SIGINT itself after an uncaught KeyboardInterrupt.
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGINT)
    return code


def print_uncaught(error):
    """Prints an exception as python3 prints an uncaught one: through
    sys.excepthook, which is C code unless the program set its own (the
    `traceback` module would take a few milliseconds, most of it to import
    `ast` for the ^^^ under the failing expression)."""
    sys.last_type, sys.last_value, sys.last_traceback = type(error), error, error.__traceback__
    try:
        sys.excepthook(type(error), error, error.__traceback__)
    except BaseException as hook_error:
        # Without this frame, and raised outside any handler as in C.
        hook_error.__context__ = None
        tb = hook_error.__traceback__.tb_next
        print("Error in sys.excepthook:", file=sys.stderr)
        sys.__excepthook__(type(hook_error), hook_error.with_traceback(tb), tb)
        print("\nOriginal exception was:", file=sys.stderr)
        sys.__excepthook__(type(error), error, error.__traceback__)


def exit_code(value):
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def fork():
    """libc's fork(), without os.fork()'s after-fork hooks (see the top)."""
    pid = LIBC.fork()
    if pid < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"fork: {os.strerror(errno)}")
    return pid


def new_pid_namespace(own_pid_ns):
    """Makes the next fork PID 1 of a fresh namespace. `unshare` works
    only while the namespace for children is our own, so reset it first."""
    return (LIBC.setns(own_pid_ns, CLONE_NEWPID) == 0
            and LIBC.unshare(CLONE_NEWPID) == 0)


def main():
    control = _socket.socket(fileno=0)
    bpf = recv_blob(control)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Jobs start with an empty bounding set; the zygote keeps its effective
    # capabilities, which the inits need for their namespaces and mounts.
    for cap in range(64):
        LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    global PREPARED
    PREPARED = Prepared(bpf)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # The first compile() in a process builds the AST node types (about a
    # millisecond): here, once, rather than in every job.
    compile("pass", "<warm-up>", "exec")
    # Collections would write to every object the forks share.
    gc.disable()
    gc.freeze()
    # The zygote's own PID namespace; each worker is forked into a new
    # child namespace of it, as its PID 1.
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    while True:
        message, fds = recv_fds(control, 1)
        if not message:
            os._exit(0)
        if len(fds) == 1 and new_pid_namespace(own_pid_ns) and fork() == 0:
            control.close()
            try:
                worker(fds[0])
            except BaseException as error:
                sys.excepthook(type(error), error, error.__traceback__)
            os._exit(3)
        for fd in fds:
            os.close(fd)

main()
