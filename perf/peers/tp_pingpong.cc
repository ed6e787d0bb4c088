// SPDX-License-Identifier: MIT
//
// TensorPipe ping-pong (Debian's libtensorpipe-dev), the engine under
// PyTorch's RPC, for rxp's comparison.
//
//   tp_pingpong [-T uv|shm] [-C basic|cma|xth|mpt] [-p port]          server
//   tp_pingpong [-T ..] [-C ..] [-p port] [-s size] [-n iters] [-w warm]
//               [-l label] [--json] <host>                             client
//
// size <= 64: the message is one payload of @size bytes (a tiny call);
// otherwise one 16-byte payload plus one CPU tensor of @size bytes.
// The server echoes every message back from the buffers it read into.
// The client drives the next iteration from TensorPipe's callback (no
// thread hand-off per call: TensorPipe's best case) and times each round
// trip. Both sides stop by themselves (alarm(600); client says "bye").
#include <getopt.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <tensorpipe/tensorpipe.h>

#include "../perf_stats.h"

namespace
{

struct Opts {
	std::string transport = "uv", channel = "basic", host, label;
	int port = 18530;
	size_t size = 64, iters = 10000, warm = 1000;
	bool json = false;
};

std::shared_ptr<tensorpipe::Context> make_context(const Opts &o)
{
	auto ctx = std::make_shared<tensorpipe::Context>();
	if (o.transport == "uv")
		ctx->registerTransport(0, "uv",
				       tensorpipe::transport::uv::create());
	else if (o.transport == "shm")
		ctx->registerTransport(0, "shm",
				       tensorpipe::transport::shm::create());
	else {
		fprintf(stderr, "tp_pingpong: unknown transport %s\n",
			o.transport.c_str());
		exit(2);
	}
	if (o.channel == "basic")
		ctx->registerChannel(0, "basic",
				     tensorpipe::channel::basic::create());
	else if (o.channel == "cma")
		ctx->registerChannel(0, "cma",
				     tensorpipe::channel::cma::create());
	else if (o.channel == "xth")
		ctx->registerChannel(0, "xth",
				     tensorpipe::channel::xth::create());
	else {
		fprintf(stderr, "tp_pingpong: unknown channel %s\n",
			o.channel.c_str());
		exit(2);
	}
	return ctx;
}

std::string url(const Opts &o, const std::string &host)
{
	if (o.transport == "shm")
		return "shm://rxp-perf-tp-" + std::to_string(o.port);
	return "uv://" + host + ":" + std::to_string(o.port);
}

void check(const tensorpipe::Error &e, const char *where)
{
	if (e) {
		fprintf(stderr, "tp_pingpong: %s: %s\n", where,
			e.what().c_str());
		exit(1);
	}
}

// ------------------------------------------------------------- server
struct Server {
	std::shared_ptr<tensorpipe::Pipe> pipe;
	std::vector<char> payload, tensor;
	std::promise<void> done;

	void next()
	{
		pipe->readDescriptor([this](const tensorpipe::Error &e,
					    tensorpipe::Descriptor d) {
			if (e) { // client closed: done
				done.set_value();
				return;
			}
			if (d.metadata == "bye") {
				done.set_value();
				return;
			}
			tensorpipe::Allocation a;
			if (!d.payloads.empty()) {
				payload.resize(d.payloads[0].length);
				a.payloads.push_back({payload.data()});
			}
			if (!d.tensors.empty()) {
				tensor.resize(d.tensors[0].length);
				a.tensors.push_back(
					{tensorpipe::CpuBuffer{tensor.data()}});
			}
			pipe->read(a, [this, d](const tensorpipe::Error &re) {
				check(re, "server read");
				tensorpipe::Message m;
				if (!d.payloads.empty())
					m.payloads.push_back({payload.data(),
							      payload.size()});
				if (!d.tensors.empty()) {
					tensorpipe::Message::Tensor t;
					t.buffer = tensorpipe::CpuBuffer{
						tensor.data()};
					t.length = tensor.size();
					m.tensors.push_back(std::move(t));
				}
				pipe->write(
					std::move(m),
					[this](const tensorpipe::Error &we) {
						check(we, "server write");
						next();
					});
			});
		});
	}
};

int run_server(const Opts &o)
{
	auto ctx = make_context(o);
	auto listener = ctx->listen({url(o, "127.0.0.1")});
	Server s;
	std::promise<std::shared_ptr<tensorpipe::Pipe>> accepted;

	printf("READY %s\n", listener->url(o.transport).c_str());
	fflush(stdout);

	listener->accept([&](const tensorpipe::Error &e,
			     std::shared_ptr<tensorpipe::Pipe> p) {
		check(e, "accept");
		accepted.set_value(std::move(p));
	});
	s.pipe = accepted.get_future().get();
	s.next();
	s.done.get_future().get();
	ctx->close();
	ctx->join();
	return 0;
}

// ------------------------------------------------------------- client
struct Client {
	std::shared_ptr<tensorpipe::Pipe> pipe;
	std::vector<char> out_payload, out_tensor, in_payload, in_tensor;
	size_t size, total, done_n = 0, warm;
	std::vector<uint64_t> lat;
	uint64_t t_iter = 0, t_start = 0, t_end = 0;
	std::promise<void> finished;

	tensorpipe::Message message()
	{
		tensorpipe::Message m;
		m.payloads.push_back({out_payload.data(), out_payload.size()});
		if (!out_tensor.empty()) {
			tensorpipe::Message::Tensor t;
			t.buffer = tensorpipe::CpuBuffer{out_tensor.data()};
			t.length = out_tensor.size();
			m.tensors.push_back(std::move(t));
		}
		return m;
	}

	void iterate()
	{
		if (done_n == warm)
			t_start = perf_now_ns();
		t_iter = perf_now_ns();
		pipe->write(message(), [](const tensorpipe::Error &e) {
			check(e, "client write");
		});
		pipe->readDescriptor([this](const tensorpipe::Error &e,
					    tensorpipe::Descriptor d) {
			check(e, "client readDescriptor");
			tensorpipe::Allocation a;
			a.payloads.push_back({in_payload.data()});
			if (!d.tensors.empty())
				a.tensors.push_back({tensorpipe::CpuBuffer{
					in_tensor.data()}});
			pipe->read(a, [this](const tensorpipe::Error &re) {
				check(re, "client read");
				uint64_t now = perf_now_ns();
				if (done_n >= warm)
					lat.push_back(now - t_iter);
				if (++done_n == total) {
					t_end = now;
					finished.set_value();
					return;
				}
				iterate();
			});
		});
	}
};

int run_client(const Opts &o)
{
	auto ctx = make_context(o);
	Client c;
	bool tiny = o.size <= 64;

	c.pipe = ctx->connect(url(o, o.host));
	c.size = o.size;
	c.warm = o.warm;
	c.total = o.iters + o.warm;
	c.out_payload.assign(tiny ? o.size : 16, 0x5a);
	c.in_payload.assign(c.out_payload.size(), 0);
	if (!tiny) {
		c.out_tensor.assign(o.size, 0x5a);
		c.in_tensor.assign(o.size, 0);
	}
	c.lat.reserve(o.iters);
	c.iterate();
	c.finished.get_future().get();

	// tell the server to stop, and wait for the write to go out
	std::promise<void> bye;
	tensorpipe::Message m;
	m.metadata = "bye";
	c.pipe->write(std::move(m),
		      [&](const tensorpipe::Error &) { bye.set_value(); });
	bye.get_future().get();

	struct perf_summary s = perf_summarize(c.lat.data(), c.lat.size());
	double sec = (double)(c.t_end - c.t_start) / 1e9;
	double calls = (double)o.iters / sec;
	double mb = 2.0 * (double)o.size * calls / 1e6;
	std::string label =
		o.label.empty()
			? "tensorpipe-" + o.transport +
				  (o.channel == "basic" ? std::string()
							: "-" + o.channel)
			: o.label;
	const char *scen = tiny ? "rtt" : "echo";
	if (o.json)
		perf_print_json(stdout, label.c_str(), scen, o.size, 1, o.iters,
				&s, mb, calls);
	else
		perf_print_text(stdout, label.c_str(), scen, o.size, 1, o.iters,
				&s, mb, calls);
	usleep(100000); // let "bye" reach the server before closing
	ctx->close();
	ctx->join();
	return 0;
}

[[noreturn]] void usage()
{
	fprintf(stderr,
		"usage: tp_pingpong [-T uv|shm] [-C basic|cma|xth] [-p port]"
		"   (server)\n"
		"       tp_pingpong [-T ..] [-C ..] [-p port] [-s size] [-n "
		"iters] [-w warm] [-l label] [--json] <host>\n");
	exit(2);
}

} // namespace

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"json", no_argument, nullptr, 'j'},
		{"help", no_argument, nullptr, 'h'},
		{nullptr, 0, nullptr, 0}};
	Opts o;
	int c;

	alarm(600);
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "T:C:p:s:n:w:l:jh", lopts,
				nullptr)) != -1) {
		switch (c) {
		case 'T':
			o.transport = optarg;
			break;
		case 'C':
			o.channel = optarg;
			break;
		case 'p':
			o.port = atoi(optarg);
			break;
		case 's':
			o.size = perf_parse_size(optarg);
			if (!o.size)
				usage();
			break;
		case 'n':
			o.iters = strtoull(optarg, nullptr, 10);
			break;
		case 'w':
			o.warm = strtoull(optarg, nullptr, 10);
			break;
		case 'l':
			o.label = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		default:
			usage();
		}
	}
	if (optind == argc)
		return run_server(o);
	if (!o.iters)
		usage();
	o.host = argv[optind];
	return run_client(o);
}
