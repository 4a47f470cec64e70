"""Our seedable random source (lib/util/rng.ts, xoshiro128**) ported exactly: the same seed
gives the same uint32 stream, so the same masks, partner permutations and data order.

Floating-point draws follow the TypeScript arithmetic step by step (doubles on both sides);
only `normal`/`gamma`/`beta` go through libm's log/cos, which may differ from V8's in the last
bit (docs/torch-engine.md#what-is-bit-identical).
"""
import math

_M32 = 0xFFFFFFFF


def _imul(a, b):
    """Math.imul: the low 32 bits of a·b, as uint32."""
    return (a * b) & _M32


def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & _M32


class Rng:
    def __init__(self, seed=0):
        if isinstance(seed, (list, tuple)):
            self.set_state(seed)
            return
        if not isinstance(seed, (int, float)) or not math.isfinite(seed):
            raise ValueError(f"Rng: seed must be a finite number, got {seed!r}")
        x = (int(math.floor(seed)) & _M32) ^ 0x9E3779B9
        s = []
        for _ in range(4):
            x = (x + 0x9E3779B9) & _M32
            z = x
            z = _imul(z ^ (z >> 16), 0x85EBCA6B)
            z = _imul(z ^ (z >> 13), 0xC2B2AE35)
            s.append((z ^ (z >> 16)) & _M32)
        if (s[0] | s[1] | s[2] | s[3]) == 0:
            s[0] = 1
        self.s = s

    def get_state(self):
        return list(self.s)

    def set_state(self, state):
        if len(state) != 4 or any((not isinstance(v, int)) or v < 0 or v > _M32 for v in state):
            raise ValueError(f"Rng: state must be four uint32 words, got {state!r}")
        if all(v == 0 for v in state):
            raise ValueError("Rng: state must not be all zero")
        self.s = list(state)

    def next_uint32(self):
        s = self.s
        result = _imul(_rotl(_imul(s[1], 5), 7), 9)
        t = (s[1] << 9) & _M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 11)
        return result

    def next(self):
        """Uniform in [0, 1) with 32 bits of resolution."""
        return self.next_uint32() / 4294967296

    def uniform(self, lo=0.0, hi=1.0):
        return lo + (hi - lo) * self.next()

    def int(self, n):
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"Rng.int: n must be a positive integer, got {n!r}")
        return math.floor(self.next() * n)

    def normal(self, mean=0.0, std=1.0):
        u = self.next()
        while u == 0:
            u = self.next()
        v = self.next()
        return mean + std * math.sqrt(-2 * math.log(u)) * math.cos(2 * math.pi * v)

    def beta(self, a, b):
        x = self.gamma(a)
        y = self.gamma(b)
        return x / (x + y)

    def gamma(self, shape):
        if shape <= 0:
            raise ValueError(f"Rng.gamma: shape must be > 0, got {shape}")
        if shape < 1:
            u = self.next() or 5e-324
            return self.gamma(shape + 1) * u ** (1 / shape)
        d = shape - 1 / 3
        c = 1 / math.sqrt(9 * d)
        while True:
            while True:
                x = self.normal()
                v = 1 + c * x
                if v > 0:
                    break
            v = v * v * v
            u = self.next()
            if u < 1 - 0.0331 * x * x * x * x:
                return d * v
            if math.log(u) < 0.5 * x * x + d * (1 - v + math.log(v)):
                return d * v

    def permutation(self, n):
        """A random permutation of 0..n-1 (Fisher–Yates), as a list."""
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.int(i + 1)
            p[i], p[j] = p[j], p[i]
        return p

    def fill_normal(self, count, mean=0.0, std=1.0):
        return [self.normal(mean, std) for _ in range(count)]

    def fork(self):
        a = self.next_uint32()
        b = self.next_uint32()
        return Rng((a ^ _imul(b, 0x2545F491)) & _M32)


def stream_seed(seed, epoch, step, stream):
    """The trainer's per-(seed, epoch, step, stream) seed (lib/train/trainer.ts)."""
    h = (int(seed) ^ 0x9E3779B9) & _M32
    for v in (epoch, step, stream):
        h = _imul((h ^ ((v + 0x7F4A7C15) & _M32)) & _M32, 0x85EBCA6B)
        h = (h ^ (h >> 13)) & _M32
    return h
