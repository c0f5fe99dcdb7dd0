/*
 * Bounded UDP request/response load generator for the native-protocol benchmark.
 *
 * It keeps WINDOW requests in flight against one server on 127.0.0.1, sends COUNT requests in
 * all, and prints one JSON line: answered, lost, seconds, answers per second and the round-trip
 * p50/p99 in microseconds.  Requests are templates read from a file (each prefixed by a 2-octet
 * big-endian length); the generator writes its sequence number into each copy at ID_OFFSET
 * (ID_WIDTH 2 for DNS, 4 for the Handle envelope's request id) and matches answers by it.  The
 * same binary drives iinode and NSD, so both sides of a ratio see the same load.
 *
 *   cc -O2 -o udp_load bench/udp_load.c
 *   udp_load HOST PORT REQFILE ID_OFFSET ID_WIDTH COUNT WINDOW [TIMEOUT_MS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define SLOTS 65536
#define MAX_REQ 4096
#define MAX_TEMPLATES 65536
#define HIST_US 200000

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned char *templates[MAX_TEMPLATES];
static size_t template_len[MAX_TEMPLATES];
static size_t template_count;
static uint64_t sent_at[SLOTS];
static uint64_t hist[HIST_US + 1];

static void load_templates(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    unsigned char head[2];
    while (template_count < MAX_TEMPLATES && fread(head, 1, 2, f) == 2) {
        size_t n = ((size_t)head[0] << 8) | head[1];
        if (n == 0 || n > MAX_REQ) {
            fprintf(stderr, "bad template length %zu\n", n);
            exit(2);
        }
        templates[template_count] = malloc(n);
        if (fread(templates[template_count], 1, n, f) != n) {
            fprintf(stderr, "truncated template file\n");
            exit(2);
        }
        template_len[template_count++] = n;
    }
    fclose(f);
    if (template_count == 0) {
        fprintf(stderr, "no templates in %s\n", path);
        exit(2);
    }
}

static void put_id(unsigned char *buf, int offset, int width, uint32_t id) {
    if (width == 2) {
        buf[offset] = (unsigned char)(id >> 8);
        buf[offset + 1] = (unsigned char)id;
    } else {
        buf[offset] = (unsigned char)(id >> 24);
        buf[offset + 1] = (unsigned char)(id >> 16);
        buf[offset + 2] = (unsigned char)(id >> 8);
        buf[offset + 3] = (unsigned char)id;
    }
}

static uint32_t get_id(const unsigned char *buf, int offset, int width) {
    if (width == 2) return ((uint32_t)buf[offset] << 8) | buf[offset + 1];
    return ((uint32_t)buf[offset] << 24) | ((uint32_t)buf[offset + 1] << 16) |
           ((uint32_t)buf[offset + 2] << 8) | buf[offset + 3];
}

static double percentile(uint64_t total, double q) {
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (int us = 0; us <= HIST_US; us++) {
        seen += hist[us];
        if (seen > want) return us;
    }
    return HIST_US;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr,
                "usage: %s HOST PORT REQFILE ID_OFFSET ID_WIDTH COUNT WINDOW [TIMEOUT_MS]\n",
                argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    load_templates(argv[3]);
    int id_offset = atoi(argv[4]);
    int id_width = atoi(argv[5]);
    uint64_t count = strtoull(argv[6], NULL, 10);
    int window = atoi(argv[7]);
    int timeout_ms = argc > 8 ? atoi(argv[8]) : 200;
    if ((id_width != 2 && id_width != 4) || window < 1 || window >= SLOTS / 2) {
        fprintf(stderr, "ID_WIDTH must be 2 or 4 and WINDOW in 1..%d\n", SLOTS / 2 - 1);
        return 2;
    }
    for (size_t i = 0; i < template_count; i++) {
        if ((size_t)(id_offset + id_width) > template_len[i]) {
            fprintf(stderr, "template %zu too short for the id field\n", i);
            return 2;
        }
    }

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("socket");
        return 2;
    }
    int buf = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);

    static unsigned char out[BATCH][MAX_REQ];
    static unsigned char in[BATCH][2048];
    struct mmsghdr out_msgs[BATCH], in_msgs[BATCH];
    struct iovec out_iov[BATCH], in_iov[BATCH];
    memset(in_msgs, 0, sizeof in_msgs);
    for (int i = 0; i < BATCH; i++) {
        in_iov[i].iov_base = in[i];
        in_iov[i].iov_len = sizeof in[i];
        in_msgs[i].msg_hdr.msg_iov = &in_iov[i];
        in_msgs[i].msg_hdr.msg_iovlen = 1;
    }

    uint64_t next = 0, answered = 0, lost = 0, stale = 0, inflight = 0;
    uint64_t started = now_ns();
    while (answered + lost < count) {
        while (inflight < (uint64_t)window && next < count) {
            int n = 0;
            memset(out_msgs, 0, sizeof out_msgs);
            while (n < BATCH && inflight + (uint64_t)n < (uint64_t)window && next + n < count) {
                uint64_t seq = next + (uint64_t)n;
                size_t t = seq % template_count;
                memcpy(out[n], templates[t], template_len[t]);
                uint32_t id = (uint32_t)(seq + 1);
                if (id_width == 2) id &= 0xffff;
                put_id(out[n], id_offset, id_width, id);
                out_iov[n].iov_base = out[n];
                out_iov[n].iov_len = template_len[t];
                out_msgs[n].msg_hdr.msg_iov = &out_iov[n];
                out_msgs[n].msg_hdr.msg_iovlen = 1;
                n++;
            }
            uint64_t t0 = now_ns();
            int done = sendmmsg(fd, out_msgs, (unsigned)n, 0);
            if (done < 0) {
                if (errno == EAGAIN || errno == ENOBUFS) break;
                perror("sendmmsg");
                return 1;
            }
            for (int i = 0; i < done; i++) {
                uint32_t id = (uint32_t)(next + (uint64_t)i + 1);
                sent_at[id & (SLOTS - 1)] = t0;
            }
            next += (uint64_t)done;
            inflight += (uint64_t)done;
            if (done < n) break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = poll(&p, 1, timeout_ms);
        if (ready == 0) {
            lost += inflight;
            inflight = 0;
            memset(sent_at, 0, sizeof sent_at);
            continue;
        }
        int got = recvmmsg(fd, in_msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == ECONNREFUSED) continue;
            perror("recvmmsg");
            return 1;
        }
        uint64_t t1 = now_ns();
        for (int i = 0; i < got; i++) {
            if (in_msgs[i].msg_len < (unsigned)(id_offset + id_width)) {
                stale++;
                continue;
            }
            uint32_t slot = get_id(in[i], id_offset, id_width) & (SLOTS - 1);
            if (sent_at[slot] == 0) {
                stale++;
                continue;
            }
            uint64_t us = (t1 - sent_at[slot]) / 1000;
            hist[us > HIST_US ? HIST_US : us]++;
            sent_at[slot] = 0;
            answered++;
            inflight--;
        }
    }
    double seconds = (double)(now_ns() - started) / 1e9;
    printf("{\"answered\": %llu, \"lost\": %llu, \"stale\": %llu, \"seconds\": %.4f, "
           "\"rate\": %.1f, \"p50_us\": %.0f, \"p99_us\": %.0f}\n",
           (unsigned long long)answered, (unsigned long long)lost, (unsigned long long)stale,
           seconds, (double)answered / seconds, percentile(answered, 0.50),
           percentile(answered, 0.99));
    return 0;
}
