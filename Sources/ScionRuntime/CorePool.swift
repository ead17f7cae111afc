import CVectorKernels
import Dispatch
import Foundation
import Synchronization

/// The executor's workers: one thread per core beyond the caller's, which spin for a while after a
/// job (about 0.2 ms) before they sleep, so the next op's job starts at once. A batch-1 pass is a
/// hundred or more small parallel ops, one after another; libdispatch's `concurrentPerform` woke
/// its sleeping workers for each, which cost about 35 µs an op on this machine (two 17 µs halves
/// took 50-58 µs together, more than one after the other), as much as many of those ops' work.
///
/// `run(count:_:)` hands out task indices `0..<count` one at a time (an atomic counter): the
/// caller takes tasks too, and returns when every task is done and no worker still holds the job.
/// One job at a time: a call made while a job runs (from inside a task, or from another thread)
/// runs its tasks itself, in order, which is what nesting needs and what any caller may get.
final class CorePool: @unchecked Sendable {
    static let shared = CorePool(workers: cores - 1)

    /// The cores this process may use, read once: Foundation's `activeProcessorCount` reads the
    /// cgroup's CPU quota from files on every call (an `openat` and a read: about 5% of a batch-1
    /// EfficientNetB0 pass when every kernel asked). It does not look at the CPUs the process may
    /// run on (`taskset`, a container's cpuset): a worker for a core the process cannot use only
    /// takes turns with the caller on the same one (EfficientNetB0 at batch 1 under `taskset -c
    /// 0`: 20-23 ms against 12 on that core alone), so the smaller of the two counts.
    static let cores: Int = {
        let quota = max(ProcessInfo.processInfo.activeProcessorCount, 1), allowed = Int(scion_allowed_cpus())
        return allowed > 0 ? min(quota, allowed) : quota
    }()

    /// One parallel call: its tasks and the next unclaimed index.
    private final class Job: @unchecked Sendable {
        let count: Int
        let body: (Int) -> Void
        let next = Atomic<Int>(0)

        init(count: Int, body: @escaping (Int) -> Void) { (self.count, self.body) = (count, body) }

        /// Claims and runs tasks until none is left.
        func work() {
            while true {
                let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < count else { return }
                body(index)
            }
        }
    }

    private let workers: Int
    /// The job being run (an unretained `Job`), nil between jobs.
    private let current = Atomic<UInt>(0)
    /// Bumped for every job, so that a spinning worker sees a new one.
    private let generation = Atomic<Int>(0)
    /// Workers between taking the current job and letting it go: the caller waits for none.
    private let holding = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private let wake = DispatchSemaphore(value: 0)

    private init(workers: Int) {
        self.workers = workers
        for _ in 0..<workers {
            let thread = Thread { [unowned self] in self.serve() }
            thread.name = "scion-core"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(i)` for every `i` in `0..<count`, on the caller's thread and the workers.
    func run(count: Int, _ body: (Int) -> Void) {
        guard count > 1, workers > 0, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for index in 0..<count { body(index) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let job = Job(count: count, body: escapable)
            current.store(UInt(bitPattern: Unmanaged.passUnretained(job).toOpaque()), ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .sequentiallyConsistent)
            for _ in 0..<min(sleepers.load(ordering: .sequentiallyConsistent), workers) { wake.signal() }
            job.work()
            // Every task is claimed; those still running are the workers' that hold the job. Once
            // none does, every task is done (and its writes seen), and the closure may go out of scope.
            current.store(0, ordering: .sequentiallyConsistent)
            while holding.load(ordering: .sequentiallyConsistent) > 0 { Self.pause() }
        }
        busy.store(false, ordering: .releasing)
    }

    /// A worker's life: wait for a new job (spinning, then asleep), help with it, again.
    private func serve() {
        var seen = generation.load(ordering: .sequentiallyConsistent)
        while true {
            var spins = 0
            while generation.load(ordering: .sequentiallyConsistent) == seen {
                spins += 1
                if spins < 4000 {
                    Self.pause()
                } else {
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    if generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    spins = 0
                }
            }
            seen = generation.load(ordering: .sequentiallyConsistent)
            holding.add(1, ordering: .sequentiallyConsistent)
            let address = current.load(ordering: .sequentiallyConsistent)
            if address != 0, let pointer = UnsafeRawPointer(bitPattern: address) {
                Unmanaged<Job>.fromOpaque(pointer)._withUnsafeGuaranteedRef { $0.work() }
            }
            holding.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    @inline(__always) private static func pause() { scion_spin_pause() }
}
