@testable import ScionCommand
@testable import Scion
@testable import ScionRuntime
import XCTest

/// The progress display: a bar redrawn in place on a terminal, plain epoch lines otherwise.
final class TrainingProgressTests: XCTestCase {
    func events() -> [FineTuning.Event] {
        var list: [FineTuning.Event] = []
        for batch in 1...4 {
            list.append(.batch("head", Trainer.BatchProgress(epoch: 1, batch: batch, batches: 4, loss: 1.5 / Double(batch),
                                                             accuracy: 0.25 * Double(batch), seconds: 0.2 * Double(batch))))
        }
        list.append(.epoch(FineTuning.EpochRecord(phase: "head", epoch: 1, epochs: 2, loss: 0.75, accuracy: 0.5,
                                                  validationLoss: 0.8, validationAccuracy: 0.4, seconds: 0.8)))
        return list
    }

    func testTerminalGetsABarThenTheEpochLine() {
        var text = ""
        let progress = TrainingProgress(quiet: false, terminal: true) { text += $0 }
        events().forEach(progress.handle)
        // The first batch draws at once, the last always; the ones between are throttled.
        XCTAssertTrue(text.contains("\r\u{1B}[2KEpoch 1 1/4 [=====>..................] ETA 0.60 s - loss 1.5 - accuracy 0.25"), text)
        XCTAssertTrue(text.contains("Epoch 1 4/4 [========================] ETA 0 s"), text)
        XCTAssertTrue(text.hasSuffix("\r\u{1B}[2KEpoch 1/2 - loss 0.75 - accuracy 0.5 - val_loss 0.8 - val_accuracy 0.4 - 0.80 s - ETA 0.80 s\n"), text)
    }

    func testLogsGetOnlyEpochLinesAndJSONNothing() {
        var text = ""
        TrainingProgress(quiet: false, terminal: false) { text += $0 }.handle(events().last!)
        events().dropLast().forEach(TrainingProgress(quiet: false, terminal: false) { text += $0 }.handle)
        XCTAssertEqual(text, "Epoch 1/2 - loss 0.75 - accuracy 0.5 - val_loss 0.8 - val_accuracy 0.4 - 0.80 s - ETA 0.80 s\n")
        var quiet = ""
        events().forEach(TrainingProgress(quiet: true, terminal: true) { quiet += $0 }.handle)
        XCTAssertEqual(quiet, "")
    }

    /// Numbers as people read them: a small loss keeps its digits (was `0.0000`), a rate its spelling.
    func testSmallNumbersStayReadable() {
        var text = ""
        TrainingProgress(quiet: false, terminal: false) { text += $0 }.handle(.epoch(FineTuning.EpochRecord(
            phase: "fine-tune", epoch: 2, epochs: 2, loss: 1.49e-08, accuracy: 1, validationLoss: 0.0278, validationAccuracy: 0.875, seconds: 12.25)))
        XCTAssertEqual(text, "fine-tune epoch 2/2 - loss 1.49e-08 - accuracy 1 - val_loss 0.0278 - val_accuracy 0.875 - 12.2 s\n")
    }
}
