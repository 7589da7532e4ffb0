/* mqttload: the load generator of `make bench`.
 *
 * One process, one epoll loop, non-blocking sockets and a minimal MQTT 3.1.1 client (CONNECT,
 * SUBSCRIBE, PUBLISH QoS 0/1, PUBACK, DISCONNECT), so that it stays far below one core while a
 * broker is pushed to its limit; with -V 5 it speaks MQTT 5.0, every PUBLISH with one User
 * Property, which each subscriber checks arrives with every message. It runs one scenario against
 * the broker at --port and prints one JSON object on stdout: the figures, its own CPU use, the
 * broker's (when --pid is given), and the message accounting.
 *
 * Every PUBLISH payload (64 bytes) carries the publisher, the topic index, a sequence number per
 * (publisher, topic) stream, a send timestamp and a fill pattern. Each subscriber knows which
 * topics it must receive and checks each stream arrives complete and in order, so a lost,
 * duplicated, reordered, corrupted or misrouted message is counted and makes "ok" false.
 *
 * Flow control: a publisher sends the next message only while every subscriber that must receive
 * it is less than --cap / publishers messages behind on that publisher's messages, so each
 * subscriber has at most --cap messages published but not yet delivered.
 *
 * Build: gcc -O2 -o build/bench/mqttload tools/bench/mqttload.c (make does this).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 64
#define MAGIC 0x4d514231u /* "MQB1" */
#define OUT_HIGH 65536    /* stop filling a publisher's buffer past this many unsent bytes */
#define IN_CAP (256 * 1024)
#define MAX_PACKET (1 << 20)
#define MAX_ERRORS 8
/* MQTT 5: the properties of every PUBLISH, one User Property ("unit", "celsius") */
static const uint8_t USER_PROPERTY[] = {0x26, 0, 4, 'u', 'n', 'i', 't', 0, 7,
                                        'c', 'e', 'l', 's', 'i', 'u', 's'};

enum { ST_CONNECTING, ST_CONNACK, ST_SUBACK, ST_READY, ST_CLOSED };
enum { PUB = 1, SUB = 2 };

typedef struct {
    int fd, role, idx, state;
    uint8_t *in;
    size_t inlen;
    uint8_t *out;
    size_t outlen, outoff, outcap;
    int want_out;       /* EPOLLOUT registered */
    int subacks_due;    /* SUBACKs still expected */
    uint16_t next_pid;
    int inflight;       /* QoS 1 publisher: PUBLISHes not yet acknowledged */
    uint8_t *pid_used;  /* QoS 1 publisher: 65536 flags, packet id outstanding */
    int next_topic;     /* publisher: position in its topic cycle */
    int blocked;        /* publisher: stopped by flow control (window_open) */
    double t_start;     /* connect scenario: when connect() was called */
} conn_t;

/* Scenario description. */
static const char *scenario = "";
static int n_pub, n_sub, n_topics, qos = 0, inflight_max = 16;
static int version = 4;        /* the protocol level every client speaks: 4 (3.1.1) or 5 */
static char **topics;          /* topic strings by index */
static int *topic_len;
static int **pub_topics;       /* per publisher: the topic indices it cycles through */
static int *pub_ntopics;
static char ***sub_filters;    /* per subscriber: filter strings */
static int *sub_nfilters;
static uint8_t *recip;         /* [topic * n_sub + sub]: sub must receive topic */
static int **topic_recips;     /* per topic: list of subscribers */
static int *topic_nrecips;

/* Parameters. */
static const char *host = "127.0.0.1";
static int pace_us = -1, port = 1883, broker_pid = 0, cap = 1000, n_clients = 1000, concurrency = 64;
static double duration = 5.0, warmup = 1.0, rate = 1000.0, timeout_s = 30.0;

/* State. */
static int ep;
static conn_t *conns;
static int n_conns;
static uint64_t *sent_ps, *recv_ps;   /* [pub * n_sub + sub] messages sent to / received by sub */
static uint32_t *stream_sent;         /* [pub * n_topics + topic] */
static uint32_t **stream_next;        /* per sub: [pub * n_topics + topic] next expected seq */
static uint64_t published, delivered, measured, lost_gaps, dups, misrouted, corrupt;
static uint64_t acks_bad;
static int measuring, publishing;
static char errors[MAX_ERRORS][200];
static int n_errors;
static double *lat;                   /* latency samples, seconds */
static size_t n_lat, lat_cap;
static uint8_t fill[256 + PAYLOAD];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void error(const char *fmt, ...) {
    if (n_errors >= MAX_ERRORS) { n_errors++; return; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errors[n_errors++], sizeof errors[0], fmt, ap);
    va_end(ap);
}

static void die(const char *msg) {
    fprintf(stderr, "mqttload: %s: %s\n", msg, strerror(errno));
    exit(2);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die("out of memory");
    return p;
}

static char *xstrdup(const char *s) {
    char *p = strdup(s);
    if (!p) die("out of memory");
    return p;
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* The broker's CPU seconds (utime + stime from /proc/PID/stat), or -1. */
static double cpu_broker(void) {
    if (!broker_pid) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", broker_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* The broker's resident memory in bytes (VmRSS in /proc/PID/status), or -1. */
static long rss_broker(void) {
    if (!broker_pid) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", broker_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* ---- output buffers and MQTT encoding ---- */

static void reserve(conn_t *c, size_t n) {
    if (c->outoff && c->outoff == c->outlen) c->outoff = c->outlen = 0;
    if (c->outlen + n <= c->outcap) return;
    if (c->outoff) {
        memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
        c->outlen -= c->outoff;
        c->outoff = 0;
        if (c->outlen + n <= c->outcap) return;
    }
    size_t cap2 = c->outcap ? c->outcap : 4096;
    while (cap2 < c->outlen + n) cap2 *= 2;
    c->out = realloc(c->out, cap2);
    if (!c->out) die("out of memory");
    c->outcap = cap2;
}

static uint8_t *put_header(uint8_t *p, uint8_t b0, size_t rem) {
    *p++ = b0;
    do {
        uint8_t d = rem & 0x7f;
        rem >>= 7;
        *p++ = d | (rem ? 0x80 : 0);
    } while (rem);
    return p;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t n) {
    *p++ = n >> 8;
    *p++ = n & 0xff;
    memcpy(p, s, n);
    return p + n;
}

static void send_connect(conn_t *c) {
    char id[64];
    int idn = snprintf(id, sizeof id, "mqttload-%d-%c%d", (int)getpid(),
                       c->role == PUB ? 'p' : 's', c->idx);
    size_t rem = 10 + 2 + idn + (version == 5);
    reserve(c, rem + 5);
    uint8_t *p = c->out + c->outlen;
    p = put_header(p, 0x10, rem);
    p = put_str(p, "MQTT", 4);
    *p++ = version;
    *p++ = 0x02;   /* clean session (Clean Start) */
    *p++ = 0; *p++ = 0; /* keepalive off: the scenarios are short */
    if (version == 5) *p++ = 0; /* no properties */
    p = put_str(p, id, idn);
    c->outlen = p - c->out;
}

static void send_subscribe(conn_t *c, const char *filter, int q) {
    size_t fl = strlen(filter), rem = 2 + 2 + fl + 1 + (version == 5);
    reserve(c, rem + 5);
    uint8_t *p = c->out + c->outlen;
    p = put_header(p, 0x82, rem);
    uint16_t pid = ++c->next_pid;
    *p++ = pid >> 8;
    *p++ = pid & 0xff;
    if (version == 5) *p++ = 0; /* no properties */
    p = put_str(p, filter, fl);
    *p++ = q;
    c->outlen = p - c->out;
    c->subacks_due++;
}

static void send_disconnect(conn_t *c) {
    reserve(c, 2);
    c->out[c->outlen++] = 0xe0;
    c->out[c->outlen++] = 0;
}

static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void send_publish(conn_t *c, int t) {
    int p_id = c->idx, tl = topic_len[t];
    size_t props = version == 5 ? 1 + sizeof USER_PROPERTY : 0;
    size_t rem = 2 + tl + (qos ? 2 : 0) + props + PAYLOAD;
    reserve(c, rem + 5);
    uint8_t *p = c->out + c->outlen;
    p = put_header(p, 0x30 | (qos << 1), rem);
    p = put_str(p, topics[t], tl);
    if (qos) {
        uint16_t pid;
        do { pid = ++c->next_pid; } while (!pid || c->pid_used[pid]);
        c->pid_used[pid] = 1;
        c->inflight++;
        *p++ = pid >> 8;
        *p++ = pid & 0xff;
    }
    if (version == 5) {
        *p++ = sizeof USER_PROPERTY;
        memcpy(p, USER_PROPERTY, sizeof USER_PROPERTY);
        p += sizeof USER_PROPERTY;
    }
    uint32_t seq = stream_sent[p_id * n_topics + t]++;
    put32(p, MAGIC);
    p[4] = p_id >> 8; p[5] = p_id; p[6] = t >> 8; p[7] = t;
    put32(p + 8, seq);
    put32(p + 12, (uint32_t)published);
    uint64_t ts = now_ns();
    put32(p + 16, ts >> 32);
    put32(p + 20, (uint32_t)ts);
    memcpy(p + 24, fill + (seq & 0xff), PAYLOAD - 24);
    c->outlen = (p + PAYLOAD) - c->out;
    published++;
    for (int i = 0; i < topic_nrecips[t]; i++) sent_ps[p_id * n_sub + topic_recips[t][i]]++;
}

/* ---- sockets ---- */

static void set_events(conn_t *c) {
    int want = c->outlen > c->outoff;
    if (want == c->want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = want;
}

static void close_conn(conn_t *c) {
    if (c->state == ST_CLOSED) return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = ST_CLOSED;
}

static void flush(conn_t *c) {
    if (c->state == ST_CLOSED || c->state == ST_CONNECTING) return;
    while (c->outlen > c->outoff) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            error("%s %d: send: %s", c->role == PUB ? "publisher" : "subscriber", c->idx,
                  strerror(errno));
            close_conn(c);
            return;
        }
        c->outoff += n;
    }
    if (c->outoff == c->outlen) c->outoff = c->outlen = 0;
    set_events(c);
}

static void open_conn(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    c->t_start = now();
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        die("connect");
    c->state = ST_CONNECTING;
    c->in = xcalloc(IN_CAP, 1);
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = 1;
}

/* connect() completed: send CONNECT. */
static void connected(conn_t *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        error("connect: %s", strerror(err));
        close_conn(c);
        return;
    }
    c->state = ST_CONNACK;
    send_connect(c);
    flush(c);
}

/* ---- incoming packets ---- */

static void on_publish(conn_t *c, uint8_t b0, const uint8_t *p, size_t rem) {
    int q = (b0 >> 1) & 3;
    if (rem < 2) { corrupt++; return; }
    size_t tl = (size_t)p[0] << 8 | p[1];
    size_t hdr = 2 + tl + (q ? 2 : 0);
    if (version == 5) {
        /* the publisher's properties, as it sent them (a Property Length under 128) */
        if (hdr + 1 + sizeof USER_PROPERTY > rem || p[hdr] != sizeof USER_PROPERTY ||
            memcmp(p + hdr + 1, USER_PROPERTY, sizeof USER_PROPERTY)) {
            corrupt++;
            return;
        }
        hdr += 1 + sizeof USER_PROPERTY;
    }
    if (hdr > rem) { corrupt++; return; }
    const char *topic = (const char *)p + 2;
    if (q) {
        reserve(c, 4);
        uint8_t *o = c->out + c->outlen;
        o[0] = 0x40; o[1] = 2; o[2] = p[2 + tl]; o[3] = p[3 + tl];
        c->outlen += 4;
    }
    const uint8_t *m = p + hdr;
    if (rem - hdr != PAYLOAD || get32(m) != MAGIC) { corrupt++; return; }
    int pub = m[4] << 8 | m[5], t = m[6] << 8 | m[7];
    if (pub >= n_pub || t >= n_topics) { corrupt++; return; }
    uint32_t seq = get32(m + 8);
    if (memcmp(m + 24, fill + (seq & 0xff), PAYLOAD - 24)) { corrupt++; return; }
    if ((size_t)topic_len[t] != tl || memcmp(topic, topics[t], tl) || !recip[t * n_sub + c->idx]) {
        misrouted++;
        return;
    }
    uint32_t *next = &stream_next[c->idx][pub * n_topics + t];
    if (seq == *next) {
        (*next)++;
    } else if (seq > *next) {
        lost_gaps += seq - *next;
        *next = seq + 1;
    } else {
        dups++;
        return;
    }
    recv_ps[pub * n_sub + c->idx]++;
    delivered++;
    if (measuring) {
        measured++;
        if (lat && n_lat < lat_cap) {
            uint64_t ts = (uint64_t)get32(m + 16) << 32 | get32(m + 20);
            lat[n_lat++] = (now_ns() - ts) * 1e-9;
        }
    }
}

static void on_packet(conn_t *c, uint8_t b0, const uint8_t *p, size_t rem) {
    switch (b0 >> 4) {
    case 2: /* CONNACK (MQTT 5: with properties after the Reason Code) */
        if (c->state != ST_CONNACK || rem < 2 || (version != 5 && rem != 2) || p[1] != 0) {
            error("CONNACK refused (code %d)", rem >= 2 ? p[1] : -1);
            close_conn(c);
            return;
        }
        if (c->role == PUB || !sub_nfilters[c->idx]) {
            c->state = ST_READY;
            break;
        }
        c->state = ST_SUBACK;
        for (int f = 0; f < sub_nfilters[c->idx]; f++) send_subscribe(c, sub_filters[c->idx][f], qos);
        break;
    case 9: { /* SUBACK (MQTT 5: properties before the Reason Codes) */
        size_t i = 2;
        if (version == 5) {
            size_t n = 0;
            int shift = 0;
            while (i < rem) {
                uint8_t d = p[i++];
                n |= (size_t)(d & 0x7f) << shift;
                shift += 7;
                if (!(d & 0x80)) break;
            }
            i += n;
        }
        for (; i < rem; i++)
            if (p[i] != qos) error("SUBACK granted 0x%02x where QoS %d was asked", p[i], qos);
        if (c->state == ST_SUBACK && --c->subacks_due == 0) c->state = ST_READY;
        break;
    }
    case 3:
        on_publish(c, b0, p, rem);
        break;
    case 4: { /* PUBACK */
        uint16_t pid = rem >= 2 ? (p[0] << 8 | p[1]) : 0;
        if (c->role != PUB || !c->pid_used || !c->pid_used[pid]) {
            acks_bad++;
            break;
        }
        c->pid_used[pid] = 0;
        c->inflight--;
        break;
    }
    default:
        error("unexpected packet type %d", b0 >> 4);
    }
}

static void on_readable(conn_t *c) {
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->inlen, IN_CAP - c->inlen, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            error("%s %d: recv: %s", c->role == PUB ? "publisher" : "subscriber", c->idx,
                  strerror(errno));
            close_conn(c);
            return;
        }
        if (n == 0) {
            error("%s %d: the broker closed the connection",
                  c->role == PUB ? "publisher" : "subscriber", c->idx);
            close_conn(c);
            return;
        }
        c->inlen += n;
        size_t pos = 0;
        while (pos + 2 <= c->inlen) {
            size_t rem = 0, i = pos + 1;
            int shift = 0, complete = 0;
            while (i < c->inlen && i < pos + 5) {
                uint8_t d = c->in[i++];
                rem |= (size_t)(d & 0x7f) << shift;
                shift += 7;
                if (!(d & 0x80)) { complete = 1; break; }
            }
            if (!complete) {
                if (i >= pos + 5) { error("malformed remaining length"); close_conn(c); return; }
                break;
            }
            if (rem > MAX_PACKET) { error("packet too large"); close_conn(c); return; }
            if (i + rem > c->inlen) break;
            on_packet(c, c->in[pos], c->in + i, rem);
            if (c->state == ST_CLOSED) return;
            pos = i + rem;
        }
        if (pos) {
            memmove(c->in, c->in + pos, c->inlen - pos);
            c->inlen -= pos;
        }
        if ((size_t)n < IN_CAP / 2) break; /* drained for now; epoll says when there is more */
    }
    if (c->outlen > c->outoff) flush(c);
}

static void handle_events(int timeout_ms) {
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (!c) continue; /* the timerfd: the caller reads it */
        if (c->state == ST_CLOSED) continue;
        if (c->state == ST_CONNECTING) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) connected(c);
            continue;
        }
        if (evs[i].events & EPOLLOUT) flush(c);
        if (c->state != ST_CLOSED && evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(c);
    }
}

/* ---- publishing ---- */

/* Whether publisher p may send to topic t now: every recipient is under the cap. A publisher
 * that hit the cap resumes only once a quarter of it is free again, so that it writes in batches
 * rather than a message per delivery (which would cost the generator a system call each). */
static int window_open(int p, int t) {
    uint64_t lim = cap / n_pub ? cap / n_pub : 1;
    if (conns[p].blocked) lim -= lim / 4;
    for (int i = 0; i < topic_nrecips[t]; i++) {
        int s = topic_recips[t][i];
        if (sent_ps[p * n_sub + s] - recv_ps[p * n_sub + s] >= lim) {
            conns[p].blocked = 1;
            return 0;
        }
    }
    conns[p].blocked = 0;
    return 1;
}

static void fill_publishers(void) {
    for (int i = 0; i < n_pub; i++) {
        conn_t *c = &conns[i];
        if (c->state != ST_READY) continue;
        while (c->outlen - c->outoff < OUT_HIGH && (!qos || c->inflight < inflight_max)) {
            int t = pub_topics[i][c->next_topic];
            if (!window_open(i, t)) break;
            send_publish(c, t);
            if (++c->next_topic == pub_ntopics[i]) c->next_topic = 0;
        }
        flush(c);
    }
}

/* ---- scenario set-up ---- */

static void topology(int np, int ns, int nt) {
    n_pub = np; n_sub = ns; n_topics = nt;
    topics = xcalloc(nt, sizeof *topics);
    topic_len = xcalloc(nt, sizeof *topic_len);
    pub_topics = xcalloc(np, sizeof *pub_topics);
    pub_ntopics = xcalloc(np, sizeof *pub_ntopics);
    sub_filters = xcalloc(ns, sizeof *sub_filters);
    sub_nfilters = xcalloc(ns, sizeof *sub_nfilters);
    recip = xcalloc((size_t)nt * (ns ? ns : 1), 1);
    topic_recips = xcalloc(nt, sizeof *topic_recips);
    topic_nrecips = xcalloc(nt, sizeof *topic_nrecips);
    for (int t = 0; t < nt; t++) topic_recips[t] = xcalloc(ns, sizeof(int));
    for (int s = 0; s < ns; s++) sub_filters[s] = xcalloc(256, sizeof(char *));
}

static void set_topic(int t, const char *fmt, int arg) {
    char buf[128];
    snprintf(buf, sizeof buf, fmt, arg);
    topics[t] = xstrdup(buf);
    topic_len[t] = strlen(buf);
}

static void add_filter(int s, const char *fmt, int arg) {
    char buf[128];
    snprintf(buf, sizeof buf, fmt, arg);
    sub_filters[s][sub_nfilters[s]++] = xstrdup(buf);
}

static void add_recipient(int t, int s) {
    recip[t * n_sub + s] = 1;
    topic_recips[t][topic_nrecips[t]++] = s;
}

static void pub_cycle(int p, int first, int step, int count) {
    pub_topics[p] = xcalloc(count, sizeof(int));
    pub_ntopics[p] = count;
    for (int i = 0; i < count; i++) pub_topics[p][i] = first + i * step;
}

static int setup_scenario(void) {
    if (!strcmp(scenario, "fanin")) {
        /* 4 publishers, each on its own topic, 1 subscriber on bench/in/+ */
        topology(4, 1, 4);
        for (int t = 0; t < 4; t++) { set_topic(t, "bench/in/%d", t); add_recipient(t, 0); pub_cycle(t, t, 1, 1); }
        add_filter(0, "bench/in/+", 0);
    } else if (!strcmp(scenario, "fanout")) {
        topology(1, 16, 1);
        set_topic(0, "bench/out", 0);
        pub_cycle(0, 0, 1, 1);
        for (int s = 0; s < 16; s++) { add_filter(s, "bench/out", 0); add_recipient(0, s); }
    } else if (!strcmp(scenario, "qos1")) {
        topology(1, 1, 1);
        qos = 1;
        set_topic(0, "bench/q1", 0);
        pub_cycle(0, 0, 1, 1);
        add_filter(0, "bench/q1", 0);
        add_recipient(0, 0);
    } else if (!strcmp(scenario, "latency")) {
        topology(1, 1, 1);
        set_topic(0, "bench/lat", 0);
        pub_cycle(0, 0, 1, 1);
        add_filter(0, "bench/lat", 0);
        add_recipient(0, 0);
    } else if (!strcmp(scenario, "subs")) {
        /* 1,000 exact topics spread over 10 subscribers (100 each), plus 2 wildcard filters per
         * subscriber that share the topics' prefix but match none of them; 4 publishers, each
         * cycling through its quarter of the topics. */
        topology(4, 10, 1000);
        for (int t = 0; t < 1000; t++) {
            set_topic(t, "bench/x/%d", t);
            add_filter(t % 10, "bench/x/%d", t);
            add_recipient(t, t % 10);
        }
        for (int s = 0; s < 10; s++) {
            add_filter(s, "bench/+/w%d", s);
            add_filter(s, "bench/x/+/%d", s);
        }
        for (int p = 0; p < 4; p++) pub_cycle(p, p, 4, 250);
    } else if (!strcmp(scenario, "connect")) {
        topology(0, n_clients + 1, n_clients + 1);  /* + the first client (run_connect) */
        for (int s = 0; s <= n_clients; s++) {
            set_topic(s, "bench/c/%d", s);
            add_filter(s, "bench/c/%d", s);
        }
    } else {
        return -1;
    }
    return 0;
}

/* Connect clients [from, to) (publishers first), subscribe the subscribers, wait until all are
   ready. */
static void connect_range(int from, int to) {
    if (!conns) {
        n_conns = n_pub + n_sub;
        conns = xcalloc(n_conns, sizeof *conns);
        for (int i = 0; i < n_conns; i++) {
            conn_t *c = &conns[i];
            c->role = i < n_pub ? PUB : SUB;
            c->idx = i < n_pub ? i : i - n_pub;
            if (c->role == PUB && qos) c->pid_used = xcalloc(65536, 1);
        }
    }
    int started = from, ready = 0;
    double deadline = now() + timeout_s;
    for (;;) {
        int busy = 0;
        ready = 0;
        for (int i = from; i < started; i++) {
            if (conns[i].state == ST_CLOSED) return; /* the reason is in errors */
            if (conns[i].state == ST_READY) ready++;
            else busy++;
        }
        if (ready == to - from || n_errors) return;
        /* a bounded number of handshakes at a time, as a crowd of real clients would */
        for (; started < to && busy < concurrency; busy++) open_conn(&conns[started++]);
        if (now() > deadline) {
            error("timed out connecting and subscribing (%d of %d ready)", ready, to - from);
            return;
        }
        handle_events(10);
    }
}

static void connect_all(void) {
    connect_range(0, n_pub + n_sub);
}

static void disconnect_all(void) {
    for (int i = 0; i < n_conns; i++) {
        conn_t *c = &conns[i];
        if (c->state == ST_CLOSED || c->state == ST_CONNECTING) continue;
        send_disconnect(c);
        flush(c);
        close_conn(c);
    }
}

/* ---- JSON ---- */

static int first_field = 1;
static void jnum(const char *k, double v) {
    /* counts exactly (a million and more deliveries would round in %g), other figures to six
       significant digits */
    if (v >= -9e15 && v <= 9e15 && v == (double)(long long)v)
        printf("%s\"%s\": %lld", first_field ? "{" : ", ", k, (long long)v);
    else
        printf("%s\"%s\": %.6g", first_field ? "{" : ", ", k, v);
    first_field = 0;
}
static void jstr(const char *k, const char *v) {
    printf("%s\"%s\": \"", first_field ? "{" : ", ", k);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar((unsigned char)*p < 0x20 ? ' ' : *p);
    }
    putchar('"');
    first_field = 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the scenarios ---- */

static void run_connect(void) {
    /* One client first, which connects, subscribes and leaves: what a broker does once, at its
       first client (code first run, tables first touched), is not a cost of each connection.
       It is the last subscriber of the topology, outside the n_clients that are counted. */
    int warm = n_pub + n_sub - 1;
    connect_range(warm, warm + 1);
    if (conns[warm].state != ST_CLOSED) {
        send_disconnect(&conns[warm]);
        flush(&conns[warm]);
        close_conn(&conns[warm]);
    }
    double quiet = now() + 0.2;
    while (now() < quiet) handle_events(50);
    /* the broker, idle, before the clients counted */
    long rss0 = rss_broker();
    double t0 = now();
    connect_range(0, warm);
    double t1 = now();
    /* let the broker settle, then weigh it with every client idle */
    double settle = now() + 1.0;
    while (now() < settle) handle_events(50);
    long rss1 = rss_broker();
    int ok = n_errors == 0;
    jstr("scenario", scenario);
    jnum("ok", ok);
    jnum("clients", n_clients);
    jnum("seconds", t1 - t0);
    jnum("conns_per_s", ok ? n_clients / (t1 - t0) : 0);
    if (rss0 > 0 && rss1 > 0) {
        jnum("rss_before", rss0);
        jnum("rss_after", rss1);
        jnum("bytes_per_conn", (double)(rss1 - rss0) / n_clients);
    }
    disconnect_all();
}

static void run_traffic(int latency) {
    connect_all();
    if (n_errors) {
        jstr("scenario", scenario);
        jnum("ok", 0);
        return;
    }
    int tfd = -1;
    if (latency) {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
        if (tfd < 0) die("timerfd_create");
        long ns = (long)(1e9 / rate);
        struct itimerspec its = {.it_interval = {ns / 1000000000, ns % 1000000000},
                                 .it_value = {ns / 1000000000, ns % 1000000000}};
        timerfd_settime(tfd, 0, &its, NULL);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
        lat_cap = (size_t)(rate * duration * 1.2) + 16;
        lat = xcalloc(lat_cap, sizeof *lat);
    }
    double start = now(), m0 = start + warmup, m1 = m0 + duration;
    double cpu0 = 0, bcpu0 = 0, t_m0 = 0, t_m1 = 0, cpu_used = 0, bcpu_used = -1;
    uint64_t pub_m0 = 0, pub_m1 = 0;
    double loop_t = start;
    publishing = 1;
    for (;;) {
        double t = now();
        if (!measuring && t_m0 == 0 && t >= m0) {
            measuring = 1; t_m0 = t; cpu0 = cpu_self(); bcpu0 = cpu_broker(); pub_m0 = published;
        }
        if (measuring && t >= m1) {
            measuring = 0; t_m1 = t; cpu_used = cpu_self() - cpu0; pub_m1 = published;
            double b = cpu_broker();
            if (b >= 0 && bcpu0 >= 0) bcpu_used = b - bcpu0;
            break;
        }
        if (n_errors) break;
        if (latency) {
            uint64_t due = 0;
            if (read(tfd, &due, sizeof due) == sizeof due) {
                for (uint64_t i = 0; i < due; i++)
                    if (window_open(0, 0)) send_publish(&conns[0], 0);
                flush(&conns[0]);
            }
            handle_events(5);
        } else {
            fill_publishers();
            handle_events(1);
            /* Pace the loop: with a cap of messages in flight the broker never runs dry, and
             * fewer, larger reads keep the generator's own CPU use low. */
            if (pace_us) {
                double rest = loop_t + pace_us * 1e-6 - now();
                if (rest > 0) {
                    struct timespec ts = {0, (long)(rest * 1e9)};
                    nanosleep(&ts, NULL);
                }
                loop_t = now();
            }
        }
    }
    publishing = 0;
    /* drain: everything published must arrive; then wait a little more for duplicates */
    double deadline = now() + 10.0;
    while (!n_errors && now() < deadline) {
        int done = 1;
        for (int p = 0; p < n_pub && done; p++)
            for (int s = 0; s < n_sub; s++)
                if (recv_ps[p * n_sub + s] < sent_ps[p * n_sub + s]) { done = 0; break; }
        for (int p = 0; p < n_pub && done && qos; p++)
            if (conns[p].inflight) done = 0;
        if (done) break;
        handle_events(5);
    }
    double grace = now() + 0.2;
    while (!n_errors && now() < grace) handle_events(5);
    uint64_t expected = 0, tail = 0;
    for (int p = 0; p < n_pub; p++)
        for (int s = 0; s < n_sub; s++) {
            expected += sent_ps[p * n_sub + s];
            if (recv_ps[p * n_sub + s] < sent_ps[p * n_sub + s])
                tail += sent_ps[p * n_sub + s] - recv_ps[p * n_sub + s];
        }
    int unacked = 0;
    for (int p = 0; p < n_pub && qos; p++) unacked += conns[p].inflight;
    uint64_t lost = lost_gaps + tail;
    int ok = !n_errors && !lost && !dups && !misrouted && !corrupt && !acks_bad && !unacked;
    double secs = t_m1 - t_m0;
    jstr("scenario", scenario);
    jnum("ok", ok);
    jnum("seconds", secs);
    jnum("published", (double)published);
    jnum("expected", (double)expected);
    jnum("delivered", (double)delivered);
    jnum("lost", (double)lost);
    jnum("duplicated", (double)dups);
    jnum("misrouted", (double)misrouted);
    jnum("corrupt", (double)corrupt);
    jnum("bad_acks", (double)acks_bad);
    jnum("unacked", unacked);
    jnum("deliveries_per_s", secs > 0 ? measured / secs : 0);
    jnum("publishes_per_s", secs > 0 ? (pub_m1 - pub_m0) / secs : 0);
    jnum("gen_cpu", secs > 0 ? cpu_used / secs : 0);
    if (bcpu_used >= 0) jnum("broker_cpu", secs > 0 ? bcpu_used / secs : 0);
    if (latency && n_lat) {
        qsort(lat, n_lat, sizeof *lat, cmp_double);
        jnum("samples", n_lat);
        jnum("p50_us", lat[n_lat / 2] * 1e6);
        jnum("p99_us", lat[(size_t)(n_lat * 0.99)] * 1e6);
        jnum("max_us", lat[n_lat - 1] * 1e6);
    }
    disconnect_all();
}

static void usage(void) {
    fprintf(stderr,
            "usage: mqttload -s fanin|fanout|qos1|latency|subs|connect [-p PORT] [-H HOST]\n"
            "       [-d SECONDS] [-w WARMUP] [-c CAP] [-n CLIENTS] [-r RATE] [-i INFLIGHT]\n"
            "       [-k CONCURRENCY] [-P BROKER_PID] [-t TIMEOUT] [-b LOOP_PACE_US] [-V 4|5]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "s:p:H:d:w:c:n:r:i:k:P:t:b:V:")) != -1) {
        switch (opt) {
        case 's': scenario = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'H': host = optarg; break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'c': cap = atoi(optarg); break;
        case 'n': n_clients = atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'i': inflight_max = atoi(optarg); break;
        case 'k': concurrency = atoi(optarg); break;
        case 'P': broker_pid = atoi(optarg); break;
        case 't': timeout_s = atof(optarg); break;
        case 'b': pace_us = atoi(optarg); break;
        case 'V': version = atoi(optarg); break;
        default: usage();
        }
    }
    if (cap < 1 || n_clients < 1 || rate <= 0 || inflight_max < 1 || concurrency < 1 ||
        (version != 4 && version != 5) ||
        setup_scenario() < 0)
        usage();
    if (pace_us < 0) pace_us = qos ? 0 : 200; /* QoS 1's 16 in flight would starve */
    for (size_t i = 0; i < sizeof fill; i++) fill[i] = (uint8_t)(i * 7 + 3);
    sent_ps = xcalloc((size_t)n_pub * n_sub, sizeof *sent_ps);
    recv_ps = xcalloc((size_t)n_pub * n_sub, sizeof *recv_ps);
    stream_sent = xcalloc((size_t)n_pub * n_topics, sizeof *stream_sent);
    stream_next = xcalloc(n_sub, sizeof *stream_next);
    if (n_pub)
        for (int s = 0; s < n_sub; s++) stream_next[s] = xcalloc((size_t)n_pub * n_topics, sizeof(uint32_t));
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    if (!strcmp(scenario, "connect")) run_connect();
    else run_traffic(!strcmp(scenario, "latency"));
    printf(", \"errors\": [");
    for (int i = 0; i < n_errors && i < MAX_ERRORS; i++) {
        printf(i ? ", \"" : "\"");
        for (const char *p = errors[i]; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar(*p);
        }
        putchar('"');
    }
    if (n_errors > MAX_ERRORS) printf(", \"... %d more\"", n_errors - MAX_ERRORS);
    printf("]}\n");
    return 0;
}
