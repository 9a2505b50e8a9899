/*
 * noop_server.c - the transport's ceiling for unpipelined requests.
 *
 * A TCP server that answers every request with ":1\r\n" and does nothing
 * else: no parsing beyond finding where requests start, no data, no log.
 * bench/run.sh drives it with the same client and load as redis-server
 * and fleetd, so its throughput is the most any server could reach on
 * this machine with one read and one write per request. A request is
 * recognised by a '*' at the start of a line, which holds for the
 * benchmark's commands (it is not a RESP parser).
 *
 * Two loops, to show the ceiling is the kernel's TCP path and not the
 * system calls around it: epoll with read/write per request (what Redis
 * and fleetd do), and, when built with liburing, io_uring with every
 * turn's receives and sends submitted in one system call.
 *
 *   noop_server PORT [epoll|uring]
 *   noop_server --has-uring      exits 0 if the io_uring loop is built
 *                                and the kernel lets it run
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef HAVE_URING /* set by bench/common.sh where liburing is installed */
#include <liburing.h>
#endif

#define MAX_FD 4096
#define READ_SIZE 16384
#define MAX_BATCH 64 /* replies per read: the benchmark pipelines at most 32 */

static const char replies[] =
    ":1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n"
    ":1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n"
    ":1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n"
    ":1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n";

/* Requests starting in buf; *at_line_start carries over between reads. */
static int count_requests(const char *buf, ssize_t n, int *at_line_start)
{
    int count = 0;
    for (ssize_t i = 0; i < n; i++) {
        if (*at_line_start && buf[i] == '*') count++;
        *at_line_start = buf[i] == '\n';
    }
    return count < MAX_BATCH ? count : MAX_BATCH;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 512)) {
        perror("noop_server: listen");
        exit(1);
    }
    return fd;
}

static void no_delay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
        perror("noop_server: TCP_NODELAY");
}

static int line_start[MAX_FD];

static int run_epoll(int lfd)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, ready[256];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)) { perror("epoll"); return 1; }
    static char buf[READ_SIZE];
    for (;;) {
        int n = epoll_wait(ep, ready, 256, -1);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd, c;
            if (fd == lfd) {
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FD) { close(c); continue; }
                    no_delay(c);
                    line_start[c] = 1;
                    ev = (struct epoll_event){.events = EPOLLIN, .data.fd = c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev)) close(c);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof(buf));
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                close(fd);
                continue;
            }
            int k = count_requests(buf, r, &line_start[fd]);
            if (k && write(fd, replies, (size_t)k * 4) < 0) close(fd);
        }
    }
}

#ifdef HAVE_URING
enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

static struct io_uring ring;
static char (*recv_buf)[READ_SIZE];

static struct io_uring_sqe *sqe(void)
{
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    if (!s) { /* full: hand what is queued to the kernel first */
        if (io_uring_submit(&ring) < 0) { perror("io_uring_submit"); exit(1); }
        s = io_uring_get_sqe(&ring);
    }
    return s;
}

static void queue_recv(int fd)
{
    struct io_uring_sqe *s = sqe();
    io_uring_prep_recv(s, fd, recv_buf[fd], READ_SIZE, 0);
    io_uring_sqe_set_data64(s, (uint64_t)OP_RECV << 32 | (uint32_t)fd);
}

static void queue_send(int fd, int k)
{
    struct io_uring_sqe *s = sqe();
    io_uring_prep_send(s, fd, replies, (size_t)k * 4, 0);
    io_uring_sqe_set_data64(s, (uint64_t)OP_SEND << 32 | (uint32_t)fd);
    s->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static int listen_fd;

static void queue_accept(void)
{
    struct io_uring_sqe *s = sqe();
    io_uring_prep_multishot_accept(s, listen_fd, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, (uint64_t)OP_ACCEPT << 32);
}

/* The ring as the loop sets it up; 0 or -errno (io_uring may be compiled
 * in but refused at run time: an old kernel, a sysctl, a seccomp filter). */
static int ring_init(void)
{
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    return io_uring_queue_init_params(4096, &ring, &p);
}

static void completed(struct io_uring_cqe *c)
{
    int op = (int)(c->user_data >> 32), fd = (int)(uint32_t)c->user_data;
    if (op == OP_ACCEPT) {
        if (!(c->flags & IORING_CQE_F_MORE)) queue_accept(); /* the kernel ended it */
        if (c->res < 0) return;
        if (c->res >= MAX_FD) { close(c->res); return; }
        no_delay(c->res);
        line_start[c->res] = 1;
        queue_recv(c->res);
    } else if (op == OP_RECV) {
        if (c->res <= 0) { close(fd); return; }
        int k = count_requests(recv_buf[fd], c->res, &line_start[fd]);
        if (k) queue_send(fd, k);
        queue_recv(fd);
    }
}

static int run_uring(int lfd)
{
    int rc = ring_init();
    recv_buf = malloc((size_t)MAX_FD * READ_SIZE);
    if (rc < 0 || !recv_buf) { fprintf(stderr, "io_uring: %s\n", strerror(-rc)); return 1; }
    listen_fd = lfd;
    queue_accept();
    for (;;) {
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR) { fprintf(stderr, "io_uring: %s\n", strerror(-rc)); return 1; }
        struct io_uring_cqe *c;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, c) {
            completed(c);
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }
}
#endif

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: noop_server PORT [epoll|uring]\n"); return 2; }
    if (!strcmp(argv[1], "--has-uring")) {
#ifdef HAVE_URING
        if (ring_init() < 0) return 1;
        io_uring_queue_exit(&ring);
        return 0;
#else
        return 1;
#endif
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port <= 0 || port > 65535) { fprintf(stderr, "noop_server: bad port\n"); return 2; }
    int lfd = listen_on((int)port);
    if (argc < 3 || !strcmp(argv[2], "epoll")) return run_epoll(lfd);
#ifdef HAVE_URING
    if (!strcmp(argv[2], "uring")) return run_uring(lfd);
#endif
    fprintf(stderr, "noop_server: loop %s not built\n", argv[2]);
    return 2;
}
