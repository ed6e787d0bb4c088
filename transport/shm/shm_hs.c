/* SPDX-License-Identifier: MIT */
/*
 * Hand-shake messages, the memfd both sides map, and cross-memory attach.
 *
 * A hello is 128 bytes, little-endian:
 *   0 u32 magic "RXPS"   4 u16 version    6 u16 kind (HELLO, WELCOME, READY)
 *   8 u32 worker id     12 u32 world size 16 u32 max storages
 *  20 u32 can read you  24 u64 max payload 32 u64 max storage
 *  40 u64 features      48 u64 ring size  56 u64 probe address
 *  64 u64 probe value   72 nonce[32]      104 zero[24]
 * With SHM_F_AUTH the WELCOME and READY carry a 32-byte proof after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shm.h"

void shm_hello_encode(uint8_t out[SHM_HELLO_SIZE], const struct shm_hello *h)
{
	memset(out, 0, SHM_HELLO_SIZE);
	rxp_put_le32(out, SHM_HS_MAGIC);
	rxp_put_le16(out + 4, SHM_PROTO_VERSION);
	rxp_put_le16(out + 6, h->kind);
	rxp_put_le32(out + 8, h->worker_id);
	rxp_put_le32(out + 12, h->world_size);
	rxp_put_le32(out + 16, h->max_storages);
	rxp_put_le32(out + 20, h->can_read_you);
	rxp_put_le64(out + 24, h->max_payload);
	rxp_put_le64(out + 32, h->max_storage);
	rxp_put_le64(out + 40, h->features);
	rxp_put_le64(out + 48, h->ring_cap);
	rxp_put_le64(out + 56, h->probe_addr);
	rxp_put_le64(out + 64, h->probe_val);
	memcpy(out + 72, h->nonce, RXP_AUTH_NONCE_BYTES);
}

int shm_hello_decode(const uint8_t in[SHM_HELLO_SIZE], struct shm_hello *h)
{
	if (rxp_get_le32(in) != SHM_HS_MAGIC)
		return -RXP_E_PROTO;
	if (rxp_get_le16(in + 4) != SHM_PROTO_VERSION)
		return -RXP_E_VERSION;
	for (unsigned i = 104; i < SHM_HELLO_SIZE; i++)
		if (in[i])
			return -RXP_E_PROTO;
	h->kind = rxp_get_le16(in + 6);
	h->worker_id = rxp_get_le32(in + 8);
	h->world_size = rxp_get_le32(in + 12);
	h->max_storages = rxp_get_le32(in + 16);
	h->can_read_you = rxp_get_le32(in + 20);
	h->max_payload = rxp_get_le64(in + 24);
	h->max_storage = rxp_get_le64(in + 32);
	h->features = rxp_get_le64(in + 40);
	h->ring_cap = rxp_get_le64(in + 48);
	h->probe_addr = rxp_get_le64(in + 56);
	h->probe_val = rxp_get_le64(in + 64);
	memcpy(h->nonce, in + 72, RXP_AUTH_NONCE_BYTES);
	if (h->kind < SHM_HS_HELLO || h->kind > SHM_HS_READY ||
	    h->can_read_you > 1 || (h->features & ~SHM_F_AUTH))
		return -RXP_E_PROTO;
	return 0;
}

int shm_memfd_new(uint64_t bytes)
{
	int fd = memfd_create("rxp-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int err;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)bytes) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int shm_memfd_check(int fd, uint64_t bytes)
{
	int need = F_SEAL_SHRINK | F_SEAL_GROW;
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS); /* EINVAL: not a memfd */

	if (seals < 0 || (seals & need) != need || fstat(fd, &st) ||
	    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != bytes)
		return -RXP_E_PROTO;
	return 0;
}

int shm_cma_read(pid_t pid, void *dst, uint64_t addr, uint64_t len)
{
	uint8_t *d = dst;

	while (len) {
		struct iovec l = {d, (size_t)len};
		struct iovec r = {(void *)(uintptr_t)addr, (size_t)len};
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EFAULT;
		d += n;
		addr += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

bool shm_cma_probe(pid_t pid, uint64_t addr, uint64_t val)
{
	uint64_t got = 0;

	return pid > 0 && !shm_cma_read(pid, &got, addr, sizeof(got)) &&
	       got == val;
}

int shm_msg_send(int sock, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = {(void *)buf, len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.b;
		m.msg_controllen = sizeof(u.b);
		u.h.cmsg_level = SOL_SOCKET;
		u.h.cmsg_type = SCM_RIGHTS;
		u.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&u.h), &fd, sizeof(int));
	}
	n = sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

ssize_t shm_msg_recv(int sock, void *buf, size_t len, int *fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct iovec iov = {buf, len};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = u.b,
			   .msg_controllen = sizeof(u.b)};
	struct cmsghdr *cm;
	bool bad = false;
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		size_t nfd;

		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0))
			continue;
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
			if (*fd < 0 && !bad)
				*fd = f;
			else {
				close(f);
				bad = true;
			}
		}
	}
	if (bad || (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -RXP_E_PROTO;
	}
	return n;
}
