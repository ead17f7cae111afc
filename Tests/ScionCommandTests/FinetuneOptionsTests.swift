import Foundation
import XCTest

/// `scion finetune`'s command line is checked before anything is read: the model given here does not
/// exist, so a check that ran after loading it would report "no such file" instead.
final class FinetuneOptionsTests: XCTestCase {
    func testSettingsOutOfRangeAreUsageErrors() throws {
        let directory = try temporaryDirectory(self)
        let absent = directory.appendingPathComponent("absent.keras").path
        let output = directory.appendingPathComponent("out.keras").path
        let base = ["finetune", absent, "--data", directory.appendingPathComponent("d.npz").path, "-o", output]
        let cases: [([String], String)] = [
            (["--learning-rate", "nan"], "--learning-rate nan: the learning rate must be a positive number"),
            (["--learning-rate", "-1"], "the learning rate must be a positive number"),
            (["--learning-rate", "0"], "the learning rate must be a positive number"),
            (["--learning-rate", "inf"], "the learning rate must be a positive number"),
            (["--unfreeze-top", "2", "--fine-tune-learning-rate", "-0.5"], "--fine-tune-learning-rate -0.5: the learning rate must be"),
            (["--unfreeze-top", "2", "--fine-tune-learning-rate", "nan"], "--fine-tune-learning-rate nan"),
            (["--optimizer", "sgd", "--momentum", "1"], "--momentum 1.0: must be at least 0 and below 1"),
            (["--optimizer", "sgd", "--momentum", "-0.1"], "--momentum -0.1: must be at least 0"),
            (["--batch-size", "0"], "--batch-size 0: must be 1 or more"),
            (["--batch-size", "-4"], "--batch-size -4: must be 1 or more"),
            (["--epochs", "-1"], "--epochs -1: must be 0 or more"),
            (["--unfreeze-top", "2", "--fine-tune-epochs", "-3"], "--fine-tune-epochs -3: must be 0 or more"),
            (["--unfreeze-top", "0"], "--unfreeze-top 0: must be 1 or more"),
            (["--optimizer", "adamw", "--weight-decay", "-1"], "--weight-decay -1.0: must be a finite number, 0 or more"),
            (["--schedule", "step", "--decay-rate", "0"], "--decay-rate 0.0: must be a positive number"),
            (["--schedule", "step", "--decay-rate", "-2"], "--decay-rate -2.0: must be a positive number"),
            (["--schedule", "step", "--decay-epochs", "0"], "--decay-epochs 0: must be 1 or more"),
            (["--validation-split", "0"], "--validation-split 0.0: must be between 0 and 1"),
            (["--validation-split", "1.5"], "--validation-split 1.5: must be between 0 and 1"),
            (["--validation-split", "-0.2"], "--validation-split -0.2: must be between 0 and 1"),
            (["--seed", "-1"], "'-1' is invalid for '--seed <n>'"),
            (["--optimizer", "rmsprop"], "'adam', 'adamw' or 'sgd'"),
            (["--schedule", "linear"], "'constant', 'cosine' or 'step'"),
            (["--loss", "hinge"], "'sparse_categorical_crossentropy', 'categorical_crossentropy', 'binary_crossentropy' or 'mse'"),
            (["--json", "--quiet"], "at most one of --json and --quiet"),
        ]
        for (extra, expected) in cases {
            try assertOneLineFailure(base + extra, mentions: expected, usage: true)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    /// A flag that would do nothing is refused, not ignored: it tells the user their run is not the one
    /// they asked for.
    func testFlagsThatDoNotApplyAreRefused() throws {
        let directory = try temporaryDirectory(self)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        let absent = path("absent.keras"), output = path("out.keras")
        let npz = ["finetune", absent, "--data", path("d.npz"), "-o", output]
        let cases: [([String], String)] = [
            (npz + ["--momentum", "0.9"], "--momentum applies to --optimizer sgd, not adam"),
            (npz + ["--optimizer", "adamw", "--nesterov"], "--nesterov applies to --optimizer sgd, not adamw"),
            (npz + ["--weight-decay", "0.01"], "--weight-decay applies to --optimizer adamw, not adam"),
            (npz + ["--optimizer", "sgd", "--weight-decay", "0.01"], "--weight-decay applies to --optimizer adamw, not sgd"),
            (npz + ["--decay-epochs", "2"], "--decay-epochs applies to --schedule step, not constant"),
            (npz + ["--schedule", "cosine", "--decay-rate", "0.5"], "--decay-rate applies to --schedule step, not cosine"),
            (npz + ["--fine-tune-learning-rate", "0.01"], "--fine-tune-learning-rate applies to the second phase"),
            (npz + ["--train-batch-norm"], "--train-batch-norm applies to the second phase"),
            (npz + ["--label-column", "label"], "--label-column applies to .csv data"),
            (npz + ["--labels", path("y.npy")], "--labels applies to .npy data"),
            (npz + ["--validation", path("v.npz"), "--validation-split", "0.2"], "either --validation or --validation-split"),
            (npz + ["--validation", path("v.npy")], "--validation \(path("v.npy")): validation data must be an .npz or .csv file"),
            (["finetune", absent, "--data", path("d.csv"), "-o", output, "--x", "images"], "--x applies to .npz data"),
            (["finetune", absent, "--data", path("d.npy"), "--labels", path("y.npy"), "-o", output, "--y", "t"], "--y applies to .npz data"),
            (["finetune", absent, "--data", path("d.npy"), "-o", output], "an .npy of inputs needs --labels Y.npy"),
            (["finetune", absent, "--data", path("d.npy"), "--labels", path("y.csv"), "-o", output], "targets must be an .npy file"),
            (["finetune", absent, "--data", path("d.txt"), "-o", output], "--data \(path("d.txt")): training data must be an .npz, .npy or .csv"),
            (["finetune", absent, "--data", path("d.npz"), "-o", absent], "is the model being trained"),
        ]
        for (arguments, expected) in cases {
            try assertOneLineFailure(arguments, mentions: expected, usage: true)
        }
        // Given where they apply, the same flags pass the command line and the run goes on to read the model.
        try assertOneLineFailure(npz + ["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--schedule", "step", "--decay-rate", "0.5"],
                                 mentions: "absent.keras")
        try assertOneLineFailure(["finetune", absent, "--data", path("d.csv"), "--validation", path("v.npz"), "--x", "a", "--label-column", "0",
                                  "-o", output], mentions: "absent.keras")
    }

    /// Every output is checked before the model or the data is read (neither exists here), -o and
    /// --report alike: no folder is created, nothing is replaced without --force.
    func testOutputsAreCheckedBeforeAnyWork() throws {
        let directory = try temporaryDirectory(self)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        let existing = path("existing.keras"), existingReport = path("existing.html")
        try Data("precious".utf8).write(to: URL(fileURLWithPath: existing))
        try Data("precious".utf8).write(to: URL(fileURLWithPath: existingReport))
        let base = ["finetune", path("absent.keras"), "--data", path("absent.npz")]
        let cases: [([String], String)] = [
            (base + ["-o", path("missing-folder/x.keras")], "does not exist (create it first)"),
            (base + ["-o", path("x.txt")], "'.txt' is not an extension"),
            (base + ["-o", existing], "already exists; pass --force"),
            (base + ["-o", path("x.keras"), "--report", existingReport], "already exists; pass --force"),
            (base + ["-o", path("x.keras"), "--report", path("missing-folder/r.html")], "does not exist (create it first)"),
            (base + ["-o", path("x.keras"), "--report", path("r.htm")], "'.htm' is not an extension"),
            (base + ["-o", path("x.keras"), "--report", directory.path], "has no extension"),
        ]
        for (arguments, expected) in cases {
            try assertOneLineFailure(arguments, mentions: expected)
        }
        try assertOneLineFailure(base, mentions: "missing the output", usage: true)
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "precious")
        XCTAssertEqual(try String(contentsOfFile: existingReport, encoding: .utf8), "precious")
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: directory.path)), ["existing.keras", "existing.html"])
    }

    /// docs/finetune.md shows the commands' usage lines exactly as --help prints them.
    func testTheDocumentedUsageIsTheHelpsUsage() throws {
        let document = try String(contentsOf: Repository.root.appendingPathComponent("docs/finetune.md"), encoding: .utf8)
        for command in ["finetune", "demo"] {
            let help = try runScion([command, "--help"])
            XCTAssertEqual(help.status, 0)
            let usage = try XCTUnwrap(help.standardOutput.split(separator: "\n").first { $0.hasPrefix("USAGE: ") })
            XCTAssertTrue(document.contains("\n\(usage)\n"), "docs/finetune.md lacks '\(usage)'")
        }
    }

    /// Shell completion offers the choices of --optimizer, --schedule and --loss and completes data files.
    func testCompletionKnowsTheChoices() throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try runScion(["--generate-completion-script", shell]).standardOutput
            for word in ["adamw", "cosine", "sparse_categorical_crossentropy", "npz", "csv", "html"] {
                XCTAssertTrue(script.contains(word), "\(shell) completion lacks \(word)")
            }
        }
    }
}
