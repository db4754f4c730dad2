// FileReceiver: one loop per strategy. recv-write-fixed runs the ring's loop; the others block
// in their system calls (bounded by the stall timeout through SO_RCVTIMEO).
#include "zcio/file_receiver.hpp"

#include "multishot_recv.hpp"
#include "pipe.hpp"
#include "zcio/arena_recv_ring.hpp"
#include "zcio/error.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace zcio {
namespace {

using Clock = std::chrono::steady_clock;

struct Job {
    int sock;
    const File& file;
    const FileRecvOptions& opt;
    FileRecvReport& rep;
    Clock::time_point progress = Clock::now();

    // The message is finished at the end (describe()): writes in flight may still add bytes.
    void fail(int err, const std::string& what) {
        if (rep.error) return;
        rep.error = err;
        rep.message = what + ": " + errno_string(err) + (err == -ENOSPC ? " (the file system is full)" : "");
    }
    void describe() {
        if (rep.error) rep.message += "; " + std::to_string(rep.bytes_written) + " bytes written so far";
    }
    bool stalled() const { return Clock::now() - progress > opt.stall_timeout; }
};

// A blocking socket's receives end after the stall timeout (the caller's SO_RCVTIMEO comes back).
class RecvTimeout {
public:
    RecvTimeout(int sock, std::chrono::milliseconds t) : sock_(sock) {
        socklen_t len = sizeof old_;
        saved_ = ::getsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &old_, &len) == 0;
        const timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>(t.count() % 1000 * 1000)};
        ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~RecvTimeout() {
        if (saved_) ::setsockopt(sock_, SOL_SOCKET, SO_RCVTIMEO, &old_, sizeof old_);
    }
    RecvTimeout(const RecvTimeout&) = delete;
    RecvTimeout& operator=(const RecvTimeout&) = delete;

private:
    int sock_;
    timeval old_{};
    bool saved_ = false;
};

int recv_error(int err) { return err == EAGAIN ? -ETIMEDOUT : -err; }

void run_recv_write(Job& j, Buffer& b) {
    std::uint64_t off = j.opt.offset;
    for (;;) {
        const ssize_t n = ::recv(j.sock, b.data(), b.capacity(), 0);
        ++j.rep.syscalls;
        if (n == 0) return;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return j.fail(recv_error(errno), "recv");
        j.rep.bytes_received += static_cast<std::uint64_t>(n);
        for (ssize_t done = 0; done < n;) {
            const ssize_t w =
                ::pwrite(j.file.fd(), b.data() + done, static_cast<std::size_t>(n - done), static_cast<off_t>(off));
            ++j.rep.syscalls;
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return j.fail(w < 0 ? -errno : -EIO, "writing at byte " + std::to_string(off));
            done += w;
            off += static_cast<std::uint64_t>(w);
            j.rep.bytes_written += static_cast<std::uint64_t>(w);
        }
    }
}

void run_splice(Job& j, std::size_t chunk) {
    detail::Pipe pipe(chunk);
    loff_t off = static_cast<loff_t>(j.opt.offset);
    for (;;) {
        const ssize_t n = ::splice(j.sock, nullptr, pipe.write.get(), nullptr, pipe.capacity, SPLICE_F_MOVE);
        ++j.rep.syscalls;
        if (n == 0) return;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return j.fail(recv_error(errno), "splice from the socket");
        j.rep.bytes_received += static_cast<std::uint64_t>(n);
        for (auto left = static_cast<std::size_t>(n); left > 0;) {
            const ssize_t w = ::splice(pipe.read.get(), nullptr, j.file.fd(), &off, left, SPLICE_F_MOVE);
            ++j.rep.syscalls;
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return j.fail(w < 0 ? -errno : -EIO, "splice into the file at byte " + std::to_string(off));
            left -= static_cast<std::size_t>(w);
            j.rep.bytes_written += static_cast<std::uint64_t>(w);
        }
    }
}

// ---- recv-write-fixed ------------------------------------------------------------------------------

// One received buffer on its way into the file.
struct WriteOp : Completion {
    Buffer buf;
    std::uint64_t offset = 0;
    std::uint32_t done = 0;
    int res = 0;
    bool finished = false;
};

class FixedWriter {
public:
    FixedWriter(Ring& ring, BufferArena& arena, Job& j)
        : ring_(ring),
          j_(j),
          buffers_(ring, arena, {.group_id = j.opt.buffer_group, .buffer_count = j.opt.buffers}),
          recv_(ring, buffers_, j.sock),
          ops_(std::make_unique<WriteOp[]>(j.opt.buffers)),
          next_(j.opt.offset) {
        for (std::uint32_t i = 0; i < j.opt.buffers; ++i) {
            ops_[i].fn = [](Completion* c, const io_uring_cqe& cqe) {
                auto* op = static_cast<WriteOp*>(c);
                op->res = cqe.res;
                op->finished = true;
            };
            free_.push_back(&ops_[i]);
        }
    }

    void run() {
        for (;;) {
            if (!stopping() && buffers_.held() < j_.opt.buffers) recv_.arm();  // (dry: wait for writes)
            for (Buffer& b : recv_.received()) start_write(std::move(b));
            recv_.received().clear();
            reap_writes();
            if (recv_.error() && !j_.rep.error) j_.fail(recv_.error(), "receiving");
            if (stopping() && inflight_ == 0 && !recv_.armed()) break;
            if (stopping() && recv_.armed()) recv_.cancel();
            if (!stopping() && j_.stalled()) j_.fail(-ETIMEDOUT, "no byte received for the stall timeout");
            ring_.run(1, std::chrono::milliseconds(100));
        }
        j_.rep.recv_completions = recv_.completions();
    }

private:
    bool stopping() const { return recv_.over() || j_.rep.error != 0; }

    void start_write(Buffer&& b) {
        if (!b) return;
        j_.rep.bytes_received += b.size();
        j_.progress = Clock::now();
        if (j_.rep.error) {
            buffers_.recycle(std::move(b));  // after an error nothing more is written
            return;
        }
        WriteOp* op = free_.back();
        free_.pop_back();
        op->offset = next_;
        next_ += b.size();
        op->buf = std::move(b);
        op->done = 0;
        submit(*op);
    }

    void submit(WriteOp& op) {
        op.finished = false;
        io_uring_sqe* sqe = ring_.sqe();
        const auto len = static_cast<unsigned>(op.buf.size() - op.done);
        if (op.buf.registered_with(ring_.id()))
            io_uring_prep_write_fixed(sqe, j_.file.fd(), op.buf.data() + op.done, len, op.offset + op.done,
                                      op.buf.buf_index());
        else io_uring_prep_write(sqe, j_.file.fd(), op.buf.data() + op.done, len, op.offset + op.done);
        io_uring_sqe_set_data(sqe, &op);
        ++inflight_;
        ++j_.rep.write_requests;
    }

    void reap_writes() {
        for (std::uint32_t i = 0; i < j_.opt.buffers; ++i) {
            WriteOp& op = ops_[i];
            if (!op.finished) continue;
            op.finished = false;
            --inflight_;
            if (op.res > 0) {
                op.done += static_cast<std::uint32_t>(op.res);
                j_.rep.bytes_written += static_cast<std::uint64_t>(op.res);
                if (op.done < op.buf.size() && !j_.rep.error) {  // short: write the rest
                    submit(op);
                    continue;
                }
            } else {
                j_.fail(op.res < 0 ? op.res : -EIO, "writing at byte " + std::to_string(op.offset + op.done));
            }
            buffers_.recycle(std::move(op.buf));
            free_.push_back(&op);
        }
    }

    Ring& ring_;
    Job& j_;
    ArenaRecvRing buffers_;
    detail::MultishotRecv recv_;
    std::unique_ptr<WriteOp[]> ops_;
    std::vector<WriteOp*> free_;
    std::uint64_t next_;
    std::uint32_t inflight_ = 0;
};

}  // namespace

FileRecvReport FileReceiver::receive(int socket_fd, const File& file, const FileRecvOptions& options) {
    FileRecvReport rep;
    rep.strategy = options.strategy;
    rep.direct = file.direct();
    const auto t0 = Clock::now();
    Job j{socket_fd, file, options, rep};
    if (file.direct()) {
        j.fail(-EINVAL,
               "receiving into an O_DIRECT file (received chunks are not block-aligned): open it "
               "without direct");
        j.describe();
        return rep;
    }
    const std::size_t chunk = options.chunk ? std::min(options.chunk, arena_.slab_size()) : arena_.slab_size();
    switch (options.strategy) {
    case FileRecvStrategy::recv_write: {
        Buffer b = arena_.take();
        if (!b) {
            j.fail(-ENOBUFS, "recv-write: the arena has no free slab");
            break;
        }
        b.resize(chunk);
        RecvTimeout bounded(socket_fd, options.stall_timeout);
        run_recv_write(j, b);
        break;
    }
    case FileRecvStrategy::splice: {
        RecvTimeout bounded(socket_fd, options.stall_timeout);
        run_splice(j, chunk);
        break;
    }
    case FileRecvStrategy::recv_write_fixed: {
        FixedWriter w(ring_, arena_, j);
        w.run();
        break;
    }
    }
    if (options.fsync && !rep.error) {
        ++rep.syscalls;
        if (::fsync(file.fd()) == 0) rep.synced = true;
        else j.fail(-errno, "fsync");
    }
    j.describe();
    rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return rep;
}

}  // namespace zcio
