// FileSender: choose a strategy, then one loop per strategy. The io_uring ones (read-zc) run the
// engine's loop; the syscall ones (sendfile, splice, read-send) block in their calls.
#include "zcio/file_sender.hpp"

#include "pipe.hpp"
#include "zcio/error.hpp"
#include "zcio/probe.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace zcio {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t align_down(std::uint64_t v, std::uint64_t a) { return v & ~(a - 1); }
constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) & ~(a - 1); }

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Where an O_DIRECT read of `n` bytes at `offset` must really go: aligned start and length.
struct DirectWindow {
    std::uint64_t read_offset;
    std::uint32_t skip;      // bytes read ahead of `offset`
    std::uint32_t read_len;  // aligned, covers skip + n
};
DirectWindow window(bool direct, std::uint64_t offset, std::size_t n) {
    if (!direct) return {offset, 0, static_cast<std::uint32_t>(n)};
    const std::uint64_t a = File::direct_alignment, start = align_down(offset, a);
    return {start, static_cast<std::uint32_t>(offset - start),
            static_cast<std::uint32_t>(align_up(offset + n, a) - start)};
}

}  // namespace

// One buffer of the two-step path (hook, or an O_DIRECT range that starts off alignment): our own
// read, our own CQE; processed in file order once read.
struct ReadSlot : Completion {
    FileSender::State* st = nullptr;
    Buffer buf;
    std::uint64_t offset = 0;  // file offset of the bytes to send
    std::uint32_t want = 0;    // bytes to send
    std::uint32_t skip = 0;    // O_DIRECT: bytes read ahead of offset
    int res = 0;
    bool inflight = false, done = false;
};

struct FileSender::State {
    FileSendReport* rep = nullptr;
    std::uint32_t inflight = 0;  // our buffers in the engine or the kernel
    std::uint32_t reads_inflight = 0;
    bool stopped = false;
    Clock::time_point progress = Clock::now();
    std::unique_ptr<ReadSlot[]> slots;  // two-step window (depth of them)
    std::uint64_t issued = 0, processed = 0;

    void fail(int err, std::string msg) {
        stopped = true;
        if (rep && !rep->error) {
            rep->error = err;
            rep->message = std::move(msg);
        }
    }
    void shrank(std::uint64_t at, std::uint64_t end) {
        fail(-ENODATA, "the file ended at byte " + std::to_string(at) + ", before the range's end at " +
                           std::to_string(end) + ": it shrank while being sent");
    }
    // A buffer handed to the engine came back.
    void released(const Release& r, std::uint32_t want, std::uint64_t offset, std::uint64_t end) {
        --inflight;
        progress = Clock::now();
        if (!rep) return;  // the transfer that sent it is over
        rep->bytes_sent += r.bytes;
        if (r.usage == Usage::zero_copy) ++rep->zero_copy;
        else if (r.usage == Usage::copied) ++rep->copied;
        if (r.error) fail(r.error, "sending the bytes at " + std::to_string(offset) + ": " + errno_string(r.error));
        else if (r.bytes < want) shrank(offset + r.bytes, end);
    }
    static void on_read(Completion* c, const io_uring_cqe& cqe) {
        auto* s = static_cast<ReadSlot*>(c);
        s->res = cqe.res;
        s->inflight = false;
        s->done = true;
        --s->st->reads_inflight;
        s->st->progress = Clock::now();
    }
};

namespace {

// sendfile(2) and splice(2) into a socket the peer reset raise SIGPIPE (they have no
// MSG_NOSIGNAL), which would kill the process. For the length of a transfer this thread blocks
// it, and a SIGPIPE raised meanwhile is taken off the thread's pending set before unblocking.
class SigpipeBlocked {
public:
    SigpipeBlocked() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~SigpipeBlocked() {
        sigset_t pending;
        sigpending(&pending);
        if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
            const timespec zero{};
            sigtimedwait(&pipe_, nullptr, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlocked(const SigpipeBlocked&) = delete;
    SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

private:
    sigset_t pipe_{}, old_{};
    bool was_pending_ = false;
};

// A blocking socket's system calls wait forever for a peer that stopped reading: for the length
// of a transfer they wait at most the stall timeout (SO_SNDTIMEO; the caller's value comes back).
class SendTimeout {
public:
    SendTimeout(int sock, std::chrono::milliseconds t) : sock_(sock) {
        socklen_t len = sizeof old_;
        saved_ = ::getsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &old_, &len) == 0;
        const auto ms = t.count();
        const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
        ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    ~SendTimeout() {
        if (saved_) ::setsockopt(sock_, SOL_SOCKET, SO_SNDTIMEO, &old_, sizeof old_);
    }
    SendTimeout(const SendTimeout&) = delete;
    SendTimeout& operator=(const SendTimeout&) = delete;

private:
    int sock_;
    timeval old_{};
    bool saved_ = false;
};

// The transfer's fixed facts, shared by the loops.
struct Job {
    SendEngine& engine;
    BufferArena& arena;
    SocketId id;
    int sock;
    bool stream;
    const File& file;
    int file_fd;  // plain fd, or a slot of the ring's file table when fixed_file
    bool fixed_file;
    std::uint64_t begin, end;
    std::size_t chunk;
    const FileSendOptions& opt;
    FileSender::State& st;
    FileSendReport& rep;

    bool stalled() const { return Clock::now() - st.progress > opt.stall_timeout; }
    void stall() {
        st.fail(-ETIMEDOUT, "no byte sent for " + std::to_string(opt.stall_timeout.count()) +
                                " ms: the peer stopped reading (or the network did)");
    }
};

// Every byte of [p, p+n) into the socket (a datagram socket: one datagram). Waits on a full
// non-blocking socket, at most the stall timeout. 0 or -errno.
bool writable(Job& j);

int send_all(Job& j, const std::byte* p, std::size_t n) {
    while (n > 0) {
        const ssize_t r = ::send(j.sock, p, n, MSG_NOSIGNAL);
        ++j.rep.syscalls;
        if (r > 0) {
            p += r;
            n -= static_cast<std::size_t>(r);
            j.rep.bytes_sent += static_cast<std::uint64_t>(r);
            j.st.progress = Clock::now();
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
            if (!writable(j)) return -ETIMEDOUT;
            continue;
        }
        return r < 0 ? -errno : -EIO;
    }
    return 0;
}

// EAGAIN: a non-blocking socket is full, or a blocking one waited the stall timeout (SO_SNDTIMEO,
// SendTimeout below) with no progress. Waits for room, at most the stall timeout from the last byte.
bool writable(Job& j) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(j.opt.stall_timeout - (Clock::now() - j.st.progress));
    if (left.count() <= 0) return false;
    pollfd pfd{j.sock, POLLOUT, 0};
    return ::poll(&pfd, 1, static_cast<int>(left.count())) > 0;
}

void run_sendfile(Job& j) {
    // A stream takes big calls; a datagram socket one datagram per call.
    const std::size_t per_call = j.stream ? std::max<std::size_t>(j.chunk, 16u << 20) : j.chunk;
    off_t off = static_cast<off_t>(j.begin);
    while (static_cast<std::uint64_t>(off) < j.end) {
        const std::size_t want = std::min<std::uint64_t>(per_call, j.end - static_cast<std::uint64_t>(off));
        const ssize_t r = ::sendfile(j.sock, j.file.fd(), &off, want);
        ++j.rep.syscalls;
        if (r > 0) {
            j.rep.bytes_sent += static_cast<std::uint64_t>(r);
            j.st.progress = Clock::now();
        } else if (r == 0) {
            j.st.shrank(static_cast<std::uint64_t>(off), j.end);
            return;
        } else if (errno == EAGAIN && writable(j)) {
        } else if (errno == EAGAIN) {
            return j.stall();
        } else if (errno != EINTR) {
            return j.st.fail(-errno, "sendfile at byte " + std::to_string(off) + ": " + errno_string(errno));
        }
    }
}

void run_splice(Job& j) {
    detail::Pipe pipe(j.chunk);
    const std::size_t per_call = std::min(j.chunk, pipe.capacity);
    loff_t off = static_cast<loff_t>(j.begin);
    while (static_cast<std::uint64_t>(off) < j.end) {
        const std::size_t want = std::min<std::uint64_t>(per_call, j.end - static_cast<std::uint64_t>(off));
        const ssize_t in = ::splice(j.file.fd(), &off, pipe.write.get(), nullptr, want, SPLICE_F_MOVE);
        ++j.rep.syscalls;
        if (in == 0) return j.st.shrank(static_cast<std::uint64_t>(off), j.end);
        if (in < 0) {
            if (errno == EINTR) continue;
            return j.st.fail(-errno,
                             "splice from the file at byte " + std::to_string(off) + ": " + errno_string(errno));
        }
        for (auto left = static_cast<std::size_t>(in); left > 0;) {
            const bool more = static_cast<std::uint64_t>(off) < j.end && j.stream;
            const ssize_t out =
                ::splice(pipe.read.get(), nullptr, j.sock, nullptr, left, SPLICE_F_MOVE | (more ? SPLICE_F_MORE : 0u));
            ++j.rep.syscalls;
            if (out > 0) {
                left -= static_cast<std::size_t>(out);
                j.rep.bytes_sent += static_cast<std::uint64_t>(out);
                j.st.progress = Clock::now();
            } else if (out < 0 && errno == EAGAIN) {
                if (!writable(j)) return j.stall();
            } else if (out < 0 && errno != EINTR) {
                return j.st.fail(-errno, "splice into the socket: " + errno_string(errno));
            }
        }
    }
}

// The classic: pread into one buffer, then send(2) it (with the hook in between).
void run_read_send(Job& j) {
    Buffer b = j.arena.take();
    if (!b) return j.st.fail(-ENOBUFS, "read-send: the arena has no free slab");
    for (std::uint64_t off = j.begin; off < j.end && !j.st.stopped;) {
        const std::size_t n = std::min<std::uint64_t>(j.chunk, j.end - off);
        const DirectWindow w = window(j.file.direct(), off, n);
        const ssize_t r = ::pread(j.file.fd(), b.data(), w.read_len, static_cast<off_t>(w.read_offset));
        ++j.rep.syscalls;
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return j.st.fail(-errno, "reading at byte " + std::to_string(off) + ": " + errno_string(errno));
        j.rep.bytes_read += static_cast<std::uint64_t>(r);
        const std::size_t got = r > w.skip ? std::min<std::size_t>(static_cast<std::size_t>(r) - w.skip, n) : 0;
        std::byte* data = b.data() + w.skip;
        if (got > 0 && j.opt.hook) {
            FileHook& hook = const_cast<FileHook&>(j.opt.hook);
            if (const int h = hook(std::span<std::byte>(data, got), off); h < 0)
                return j.st.fail(h, "the hook refused the bytes at " + std::to_string(off) + ": " + errno_string(h));
        }
        if (const int e = send_all(j, data, got); e < 0)
            return e == -ETIMEDOUT ? j.stall() : j.st.fail(e, "send: " + errno_string(e));
        if (got < n) return j.st.shrank(off + got, j.end);
        off += n;
    }
}

// read-zc, linked: each buffer's READ_FIXED and SEND_ZC leave together (SendEngine::read_and_send).
void run_read_zc_linked(Job& j) {
    FileSender::State& st = j.st;
    const std::uint64_t end = j.end;
    std::uint64_t next = j.begin;
    for (;;) {
        while (!st.stopped && next < end && st.inflight < j.opt.depth) {
            Buffer b = j.arena.take();
            if (!b) break;
            const std::size_t n = std::min<std::uint64_t>(j.chunk, end - next);
            const DirectWindow w = window(j.file.direct(), next, n);  // skip is 0: begin is aligned here
            b.resize(n);
            ++st.inflight;
            ++j.rep.read_requests;
            ++j.rep.sends;
            j.rep.bytes_read += w.read_len;  // corrected below for a short read (the release says)
            j.engine.read_and_send(j.id, std::move(b), {j.file_fd, j.fixed_file, w.read_offset, w.read_len},
                                   Storage{[s = &st, n, next, end](Release r) {
                                       if (s->rep && r.buffer.size() < n) s->rep->bytes_read -= n - r.buffer.size();
                                       s->released(r, static_cast<std::uint32_t>(n), next, end);
                                   }});
            next += n;
        }
        if (st.inflight == 0 && (st.stopped || next >= end)) return;
        if (j.stalled()) return j.stall();
        j.engine.run(true, std::chrono::milliseconds(100));
    }
}

// One read of the two-step window into slot `s`.
void issue_read(Job& j, ReadSlot& s, Buffer&& b, std::uint64_t off, std::size_t n) {
    const DirectWindow w = window(j.file.direct(), off, n);
    s.buf = std::move(b);
    s.offset = off;
    s.want = static_cast<std::uint32_t>(n);
    s.skip = w.skip;
    s.done = false;
    s.inflight = true;
    io_uring_sqe* sqe = j.engine.ring().sqe();
    if (s.buf.registered_with(j.engine.ring().id()))
        io_uring_prep_read_fixed(sqe, j.file_fd, s.buf.data(), w.read_len, w.read_offset, s.buf.buf_index());
    else io_uring_prep_read(sqe, j.file_fd, s.buf.data(), w.read_len, w.read_offset);
    if (j.fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, &s);
    ++j.st.reads_inflight;
    ++j.st.inflight;
    ++j.rep.read_requests;
}

// A read slot's bytes, in file order: the hook, then the send.
void process_read(Job& j, ReadSlot& s) {
    FileSender::State& st = j.st;
    --st.inflight;
    Buffer b = std::move(s.buf);  // dropped here (back to the arena) unless sent
    s.done = false;
    if (st.stopped) return;
    if (s.res < 0) return st.fail(s.res, "reading at byte " + std::to_string(s.offset) + ": " + errno_string(s.res));
    j.rep.bytes_read += static_cast<std::uint64_t>(s.res);
    const auto res = static_cast<std::uint32_t>(s.res);
    const std::uint32_t got = res > s.skip ? std::min(res - s.skip, s.want) : 0;
    if (s.skip && got) std::memmove(b.data(), b.data() + s.skip, got);  // O_DIRECT's head, off alignment
    b.resize(got);
    if (got && j.opt.hook) {
        FileHook& hook = const_cast<FileHook&>(j.opt.hook);
        if (const int h = hook(b.span(), s.offset); h < 0)
            return st.fail(h, "the hook refused the bytes at " + std::to_string(s.offset) + ": " + errno_string(h));
    }
    if (got) {
        ++st.inflight;
        ++j.rep.sends;
        j.engine.send(j.id, std::move(b), Storage{[p = &st, want = got, off = s.offset, end = j.end](Release r) {
                          p->released(r, want, off, end);
                      }});
    }
    if (got < s.want) st.shrank(s.offset + got, j.end);
}

// read-zc in two steps: READ_FIXED -> (hook) -> SEND_ZC, reads running ahead in a window.
void run_read_zc_two_step(Job& j) {
    FileSender::State& st = j.st;
    st.slots = std::make_unique<ReadSlot[]>(j.opt.depth);
    for (std::uint32_t i = 0; i < j.opt.depth; ++i) {
        st.slots[i].fn = &FileSender::State::on_read;
        st.slots[i].st = &st;
    }
    st.issued = st.processed = 0;
    std::uint64_t next = j.begin;
    for (;;) {
        while (!st.stopped && next < j.end && st.inflight < j.opt.depth && st.issued - st.processed < j.opt.depth) {
            Buffer b = j.arena.take();
            if (!b) break;
            const std::size_t n = std::min<std::uint64_t>(j.chunk, j.end - next);
            issue_read(j, st.slots[st.issued++ % j.opt.depth], std::move(b), next, n);
            next += n;
        }
        while (st.processed < st.issued && st.slots[st.processed % j.opt.depth].done)
            process_read(j, st.slots[st.processed++ % j.opt.depth]);
        if (st.inflight == 0 && (st.stopped || next >= j.end)) return;
        if (j.stalled()) return j.stall();
        j.engine.run(true, std::chrono::milliseconds(100));
    }
}

// auto's rule, and the reasons a requested strategy cannot run as asked.
FileSendStrategy choose(const FileSendOptions& o, const File& f, std::string& why) {
    const bool zc = probe().send_zc;
    if (o.strategy == FileSendStrategy::read_zc && !zc) {
        why = "this kernel lacks SEND_ZC (" + probe().why("send_zc") + "): read-send";
        return FileSendStrategy::read_send;
    }
    if (o.strategy != FileSendStrategy::automatic) return o.strategy;
    if (o.hook) {
        why = zc ? "a hook must see the bytes: read-zc (READ_FIXED -> hook -> SEND_ZC)"
                 : "a hook must see the bytes, and this kernel lacks SEND_ZC: read-send";
        return zc ? FileSendStrategy::read_zc : FileSendStrategy::read_send;
    }
    if (f.direct() && zc) {
        why = "O_DIRECT: read-zc reads into registered memory with no CPU copy (sendfile goes through the page cache)";
        return FileSendStrategy::read_zc;
    }
    why = "a cached file no hook needs to see: sendfile moves its page-cache pages with no copy at all";
    return FileSendStrategy::sendfile;
}

}  // namespace

FileSender::FileSender(SendEngine& engine, BufferArena& arena, int socket_fd)
    : engine_(engine), arena_(arena), fd_(socket_fd), st_(std::make_unique<State>()) {
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(socket_fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        throw SetupError("FileSender: fd " + std::to_string(socket_fd) + " is not a socket", errno);
    stream_ = type == SOCK_STREAM;
    const Strategy s = probe().send_zc_fixed ? Strategy::zc_fixed : Strategy::automatic;
    id_ = engine_.add_socket(socket_fd, {.strategy = s, .max_inflight_bytes = 256u << 20});
}

FileSender::~FileSender() {
    st_->rep = nullptr;
    // Our own reads first (regular files: they end), then the engine's sends of this socket.
    for (int i = 0; i < 1000 && st_->reads_inflight > 0; ++i) engine_.ring().run(1, std::chrono::milliseconds(10));
    if (st_->reads_inflight == 0) st_->slots.reset();
    if (engine_.remove_socket(id_) != 0 || st_->reads_inflight > 0) {
        // The kernel still holds some of our buffers (a peer that never acknowledges): their
        // releases will name this state when the engine finally gives up on them. Keep it.
        (void)st_.release();
    }
}

std::uint32_t FileSender::in_flight() const noexcept { return st_->inflight; }

FileSendReport FileSender::send(const File& file, FileRange range, const FileSendOptions& options) {
    FileSendReport rep;
    rep.requested = options.strategy;
    rep.direct = file.direct();
    const auto t0 = Clock::now();
    State& st = *st_;
    st.rep = &rep;
    st.stopped = false;
    st.progress = t0;
    struct Detach {  // whatever happens (a hook that throws), the report is ours only until we return
        State& st;
        ~Detach() { st.rep = nullptr; }
    } detach{st};
    if (st.inflight > 0 || st.reads_inflight > 0) {
        st.fail(-EBUSY, "the previous transfer on this socket still has buffers in flight (it stalled)");
        return rep;
    }
    rep.used = choose(options, file, rep.why);
    const std::int64_t size = file.size();
    const std::uint64_t begin = range.offset;
    const std::uint64_t end = range.length == FileRange::to_eof
                                  ? static_cast<std::uint64_t>(std::max<std::int64_t>(size, 0))
                                  : begin + range.length;
    std::size_t chunk = options.chunk ? std::min(options.chunk, arena_.slab_size()) : arena_.slab_size();
    if (file.direct()) chunk = align_down(chunk, File::direct_alignment);
    rep.chunk = chunk;
    if (size < 0) st.fail(static_cast<int>(size), "fstat: " + errno_string(static_cast<int>(size)));
    else if (end < begin || end > static_cast<std::uint64_t>(size) || begin > static_cast<std::uint64_t>(size))
        st.fail(-ENODATA, "the range [" + std::to_string(begin) + ", " + std::to_string(end) +
                              ") goes past the end of " + file.path() + " (" + std::to_string(size) + " bytes)");
    else if (options.hook && (rep.used == FileSendStrategy::sendfile || rep.used == FileSendStrategy::splice))
        st.fail(-EINVAL,
                std::string(to_string(rep.used)) + " never shows the bytes to a hook: use read-zc, read-send or auto");
    else if (chunk == 0 || options.depth == 0)
        st.fail(-EINVAL, "chunk and depth must be > 0 (O_DIRECT: chunk of at least " +
                             std::to_string(File::direct_alignment) + " bytes)");
    if (st.stopped || begin == end) return rep;

    const int slot = rep.used == FileSendStrategy::read_zc ? engine_.ring().register_file(file.fd()) : -1;
    Job j{engine_,   arena_, id_, fd_,   stream_, file, slot >= 0 ? slot : file.fd(),
          slot >= 0, begin,  end, chunk, options, st,   rep};
    switch (rep.used) {
    case FileSendStrategy::sendfile: {
        SigpipeBlocked quiet;
        SendTimeout bounded(fd_, options.stall_timeout);
        run_sendfile(j);
        break;
    }
    case FileSendStrategy::splice: {
        SigpipeBlocked quiet;
        SendTimeout bounded(fd_, options.stall_timeout);
        run_splice(j);
        break;
    }
    case FileSendStrategy::read_send: {
        SendTimeout bounded(fd_, options.stall_timeout);
        run_read_send(j);
        break;
    }
    default:
        // Two steps when a hook must run between read and send, or O_DIRECT must read ahead of
        // an unaligned start; else the linked pair.
        if (options.hook || (file.direct() && begin % File::direct_alignment)) run_read_zc_two_step(j);
        else run_read_zc_linked(j);
    }
    if (slot >= 0) engine_.ring().unregister_file(slot);  // requests still using it keep the file
    rep.seconds = since(t0);
    return rep;
}

}  // namespace zcio
