import CBLAS
import Foundation
import Synchronization

/// Matrix products through the system BLAS (OpenBLAS), and the one setting that makes it fast here.
package enum BLAS {
    /// `C[m×n] = A[m×k] · B[k×n] (+ C when accumulate)`, row-major; `transposeA`/`transposeB` read A
    /// as `[k×m]` or B as `[n×k]`.
    /// `ldc` is C's row stride when C is a block of columns of a wider matrix.
    /// `lda`/`ldb` are A's and B's row strides when they are blocks of wider matrices.
    static func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, transposeA: Bool = false,
                     b: UnsafePointer<Float>, transposeB: Bool = false, c: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                     lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil) {
        // Outside `singleThreaded`, OpenBLAS may use every core for this product (its threads start
        // now if they were stopped: this product wants them).
        if heldToOneThread.load(ordering: .relaxed) == 0 && openblas_get_num_threads() != CorePool.cores {
            openblas_set_num_threads(Int32(CorePool.cores))
        }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(lda ?? (transposeA ? m : k)), b, Int32(ldb ?? (transposeB ? k : n)),
                    accumulate ? 1 : 0, c, Int32(ldc ?? n))
    }

    /// The kernel OpenBLAS chose when it was loaded (`SkylakeX`, `Haswell`, `Prescott`...).
    package static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// One line for verbose output: the kernel and where the choice came from.
    package static var kernelReport: String {
        let environment = ProcessInfo.processInfo.environment
        let source: String
        if environment["SCION_BLAS_REEXEC"] != nil {
            source = "OPENBLAS_CORETYPE set by Scion from the CPU's flags"
        } else if let set = environment["OPENBLAS_CORETYPE"] {
            source = "OPENBLAS_CORETYPE=\(set) from the environment, left as set"
        } else {
            source = "detected by OpenBLAS"
        }
        return "OpenBLAS \(coreName) kernel (\(source))"
    }

    /// OpenBLAS 0.3.21 (Debian 12) does not recognise some recent CPUs and falls back to older
    /// kernels (Prescott, or Haswell's AVX2 on AVX-512 machines), 2 to 5 times slower than the
    /// ones the CPU can run (docs/benchmarks.md). The
    /// kernel is picked when the library loads, so the choice must be in the environment before the
    /// process starts: `reexecIfNeeded` sets `OPENBLAS_CORETYPE` from the CPU's flags and runs the
    /// command again, once. It never overrides a value the user or the system set (some set it to
    /// avoid wrong results on older builds), and does nothing when OpenBLAS already found a fast core.
    /// Whichever way this returns (not by running the command again), OpenBLAS's idle threads are
    /// stopped (`stopIdleThreads`).
    package static func reexecIfNeeded(arguments: [String] = CommandLine.arguments) {
        defer { stopIdleThreads() }
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["SCION_BLAS_REEXEC"] == nil,
              let wanted = suitableCore(cpuFlags: cpuFlags()), lesserCores[wanted]?.contains(coreName) == true else { return }
        setenv("OPENBLAS_CORETYPE", wanted, 1)
        setenv("SCION_BLAS_REEXEC", "1", 1)
        var pointers = arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &pointers)
        // exec failed: carry on with the slow kernel rather than fail.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv("SCION_BLAS_REEXEC")
    }

    /// Cores OpenBLAS may fall back to that are slower than the one named (measured here: sgemm
    /// 1024³ at 227 GFLOP/s with the Haswell kernel it picks on an AVX-512 CPU, 438 with SkylakeX;
    /// other machines fall back to Prescott at ~27).
    static let lesserCores: [String: Set<String>] = [
        "SkylakeX": ["Prescott", "Core2", "Nehalem", "Sandybridge", "Haswell", "Zen", "unknown"],
        "Haswell": ["Prescott", "Core2", "Nehalem", "Sandybridge", "unknown"],
    ]

    /// The OpenBLAS core for a CPU with these `/proc/cpuinfo` flags; nil when there is nothing to gain.
    static func suitableCore(cpuFlags: Set<String>) -> String? {
        if ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"].allSatisfy(cpuFlags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(cpuFlags.contains) { return "Haswell" }
        return nil
    }

    static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }
}

extension BLAS {
    /// `gemm` with the work split over the cores by Scion: C's rows in one part per core (or, with
    /// few rows, its columns), each part one OpenBLAS call on its own thread, OpenBLAS itself held
    /// to one thread meanwhile. OpenBLAS's own threads spin for a while after each product
    /// (sched_yield loops: a fifth of the CPU time of a ResNet50 batch-32 pass, and at batch 1 more
    /// than the products on MobileNetV2), taking the core the executor's other loops wanted.
    static func splitGemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, transposeA: Bool = false,
                          b: UnsafePointer<Float>, transposeB: Bool = false, c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        let cores = CorePool.cores
        let byRows = m >= 64 * cores, byColumns = !byRows && n >= 32 * cores
        let (lda, ldb, rowStride) = (transposeA ? m : k, transposeB ? k : n, ldc ?? n)
        guard cores > 1, byRows || byColumns, m * n * k >= 1 << 18 else {
            return singleThreaded { gemm(m: m, n: n, k: k, a: a, transposeA: transposeA, b: b, transposeB: transposeB, c: c, ldc: rowStride) }
        }
        let addresses = (Int(bitPattern: a), Int(bitPattern: b), Int(bitPattern: c))
        singleThreaded { Kernels.splitOverCores(byRows ? m : n) { range in
            guard let a = UnsafePointer<Float>(bitPattern: addresses.0), let b = UnsafePointer<Float>(bitPattern: addresses.1),
                  let c = UnsafeMutablePointer<Float>(bitPattern: addresses.2) else { return }
            let (first, count) = (range.lowerBound, range.count)
            if byRows {
                gemm(m: count, n: n, k: k, a: a + (transposeA ? first : first * k), transposeA: transposeA, b: b, transposeB: transposeB,
                     c: c + first * rowStride, lda: lda, ldb: ldb, ldc: rowStride)
            } else {
                gemm(m: m, n: count, k: k, a: a, transposeA: transposeA, b: b + (transposeB ? first * k : first), transposeB: transposeB,
                     c: c + first, lda: lda, ldb: ldb, ldc: rowStride)
            }
        } }
    }

    /// OpenBLAS starts its worker threads when it loads, and each spins in `sched_yield` for about
    /// 2^28 cycles (a tenth of a second) waiting for work before it sleeps: in a `scion` process that
    /// was one of the two cores taken from reading, preparing and the first pass (a whole batch-2
    /// MobileNetV2 `scion run`: 175 → 113 ms of CPU, 0.15 → 0.115 s). Inference never hands
    /// OpenBLAS a multi-threaded product (`splitGemm`), so the commands stop them at start;
    /// OpenBLAS starts them again by itself for the first product that wants them.
    ///
    /// They are held to one first: once stopped, any change of the count starts them again
    /// (`openblas_set_num_threads` → `blas_thread_init`), and `singleThreaded`'s own change did so on
    /// the first convolution, a whole `scion run` long (a quarter of a batch-2 MobileNetV2 run's
    /// samples in `sched_yield`). From then on the count is changed only where a product wants
    /// more (`gemm`, outside `singleThreaded`).
    package static func stopIdleThreads() {
        openblas_set_num_threads(1)
        _ = blas_thread_shutdown_()
    }

    /// Callers inside `singleThreaded` (any thread): while there is one, `gemm` leaves OpenBLAS at one thread.
    private static let heldToOneThread = Atomic<Int>(0)

    /// Runs `body` with OpenBLAS held to one thread (for products Scion splits over the cores itself).
    /// The count stays at one afterwards; the next product outside asks for the cores again.
    static func singleThreaded<Result>(_ body: () throws -> Result) rethrows -> Result {
        heldToOneThread.add(1, ordering: .relaxed)
        defer { heldToOneThread.subtract(1, ordering: .relaxed) }
        if openblas_get_num_threads() != 1 { openblas_set_num_threads(1) }
        return try body()
    }
}
