import Dispatch
import Foundation
@testable import ScionRuntime
import Synchronization
import XCTest

/// The executor's workers (CorePool.swift): every task of a job runs exactly once and is done
/// when `run` returns, jobs back to back or after the workers fell asleep, a job started from
/// inside a task (nested: its tasks run in order on that thread), jobs started from several
/// threads at once (one gets the workers, the others run their own tasks).
final class CorePoolTests: XCTestCase {
    final class Counts: Sendable {
        let values: Mutex<[Int]>
        init(_ count: Int) { values = Mutex([Int](repeating: 0, count: count)) }
        func bump(_ index: Int) { values.withLock { $0[index] += 1 } }
        var all: [Int] { values.withLock { $0 } }
    }

    func testEveryTaskRunsOnceBeforeRunReturns() {
        for count in [0, 1, 2, 3, 17, 1000] {
            for _ in 0..<200 {
                let counts = Counts(count)
                CorePool.shared.run(count: count) { counts.bump($0) }
                XCTAssertEqual(counts.all, Array(repeating: 1, count: count), "\(count) tasks")
            }
        }
    }

    func testJobsAfterTheWorkersFellAsleep() {
        for _ in 0..<5 {
            Thread.sleep(forTimeInterval: 0.005)
            let counts = Counts(64)
            CorePool.shared.run(count: 64) { counts.bump($0) }
            XCTAssertEqual(counts.all, Array(repeating: 1, count: 64))
        }
    }

    func testNestedAndConcurrentJobs() {
        let outer = 8, inner = 16
        let counts = Counts(outer * inner)
        CorePool.shared.run(count: outer) { o in
            CorePool.shared.run(count: inner) { i in counts.bump(o * inner + i) }
        }
        XCTAssertEqual(counts.all, Array(repeating: 1, count: outer * inner))
        let callers = 4, tasks = 100
        let shared = Counts(callers * tasks)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            for _ in 0..<50 {
                let local = Counts(tasks)
                CorePool.shared.run(count: tasks) { local.bump($0) }
                XCTAssertEqual(local.all, Array(repeating: 1, count: tasks))
            }
            CorePool.shared.run(count: tasks) { shared.bump(caller * tasks + $0) }
        }
        XCTAssertEqual(shared.all, Array(repeating: 1, count: callers * tasks))
    }
}
