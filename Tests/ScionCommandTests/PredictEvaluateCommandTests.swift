import Foundation
import Scion
import ScionRuntime
import XCTest

/// `scion predict` and `scion evaluate`, end to end, and the pieces they share: class names stored in
/// models, keras.applications' preprocessing. Their numbers are checked against Keras 3, onnxruntime
/// and NumPy in Tests/Interop/check_predict.py; here, the commands' shapes and refusals.
final class PredictEvaluateCommandTests: XCTestCase {
    let digits = Repository.fixture("digits/digits_cnn.h5")
    var pretrain = ""

    /// The first 40 digits of fixtures/digits/pretrain.npz (all five classes): enough to see every
    /// part of the output, small enough for a debug build.
    override func setUpWithError() throws {
        let arrays = try NumpyArchive.read(Repository.fixture("digits/pretrain.npz"))
        let subset = arrays.map { ($0.name, $0.tensor.rows(0..<40)) }
        pretrain = try temporaryDirectory(self).appendingPathComponent("digits.npz").path
        try NumpyArchive.write(subset, to: pretrain)
    }

    func testPredictListsTopClassesPerSample() throws {
        let directory = try temporaryDirectory(self)
        let csv = directory.appendingPathComponent("p.csv").path
        let result = try runScion(["predict", digits, pretrain, "--top", "2", "--json", "--output", csv])
        XCTAssertEqual(result.status, 0, result.standardError)
        let listing = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [[String: Any]])
        XCTAssertEqual(listing.count, 40)
        XCTAssertEqual(listing[3]["file"] as? String, "\(pretrain)[3]")
        let predictions = try XCTUnwrap(listing[0]["predictions"] as? [[String: Any]])
        XCTAssertEqual(predictions.count, 2)
        XCTAssertEqual(Set(predictions[0].keys), ["class", "index", "probability"])
        XCTAssertGreaterThanOrEqual(predictions[0]["probability"] as? Double ?? 0, predictions[1]["probability"] as? Double ?? 1)
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.first, "file,rank,class,index,probability")
        XCTAssertEqual(rows.count, 1 + 40 * 2)
        let text = try runScion(["predict", digits, pretrain, "--top", "1", "--class-names", "zero,one,two,three,four"])
        XCTAssertTrue(text.standardOutput.contains("applies softmax"), text.standardOutput)
        XCTAssertTrue(text.standardOutput.contains("\(pretrain)[1]: one (1) 0.9"), text.standardOutput)
    }

    func testEvaluateJSONHasEveryKeyAndTheReportIsWritten() throws {
        let directory = try temporaryDirectory(self)
        let report = directory.appendingPathComponent("report").path
        let result = try runScion(["evaluate", digits, "--data", pretrain, "--json", "--report", report])
        XCTAssertEqual(result.status, 0, result.standardError)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        for key in ["accuracy", "loss", "top5Accuracy", "classes", "perClass", "confusionMatrix", "samples", "skipped"] {
            XCTAssertNotNil(object[key], key)
        }
        XCTAssertEqual(object["samples"] as? Int, 40)
        XCTAssertEqual((object["confusionMatrix"] as? [[Int]])?.map { $0.reduce(0, +) }, [10, 7, 9, 8, 6])
        for name in ["index.html", "confusion_matrix.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: (report as NSString).appendingPathComponent(name)), name)
        }
        try assertOneLineFailure(["evaluate", digits, "--data", pretrain, "--report", report], mentions: "already exists; pass --force")
        let text = try runScion(["evaluate", digits, "--data", pretrain])
        XCTAssertTrue(text.standardOutput.contains("confusion matrix (rows: true class, columns: predicted)"), text.standardOutput)
    }

    func testClassNamesTravelThroughEveryFormat() throws {
        let directory = try temporaryDirectory(self)
        let names = ["zero", "one", "two", "three", "four"]
        var graph = try Model.load(digits).graph
        graph.classNames = names
        let model = Model(graph: graph, format: .kerasHDF5, path: digits)
        for format in ["keras", "h5", "onnx"] {
            let path = directory.appendingPathComponent("named.\(format)").path
            try model.write(to: path)
            XCTAssertEqual(try Model.load(path).graph.classNames, names, format)
            let inspected = try runScion(["inspect", path])
            XCTAssertTrue(inspected.standardOutput.contains("Classes:   5: zero, one, two, three, four"), inspected.standardOutput)
        }
    }

    func testPreprocessingModesGiveKerasNumbers() throws {
        // keras.applications.imagenet_utils.preprocess_input on [[[[10, 20, 30], [200, 100, 0]]]] (Keras 3.15).
        let x = RuntimeTensor(shape: [1, 1, 2, 3], data: [10, 20, 30, 200, 100, 0])
        let expected: [(InputPreprocessing, [Float])] = [
            (.caffe, [-73.939003, -96.778999, -113.68, -103.939003, -16.778999, 76.32]),
            (.tf, [-0.92156863, -0.84313726, -0.7647059, 0.5686275, -0.21568626, -1.0]),
            (.torch, [-1.9466565, -1.6855742, -1.2815686, 1.3070468, -0.28501397, -1.8044444]),
        ]
        for (mode, values) in expected {
            let got = try mode.apply(to: x, channelAxis: 3, what: "x")
            for (a, b) in zip(got.data, values) { XCTAssertEqual(a, b, accuracy: 1e-4 * 113.68, "\(mode)") }
        }
        let channelsFirst = RuntimeTensor(shape: [1, 3, 1, 2], data: [10, 200, 20, 100, 30, 0])
        // The same call with data_format="channels_first".
        let caffeFirst: [Float] = [-73.939003, -103.939003, -96.778999, -16.778999, -113.68, 76.32]
        for (a, b) in zip(try InputPreprocessing.caffe.apply(to: channelsFirst, channelAxis: 1, what: "x").data, caffeFirst) {
            XCTAssertEqual(a, b, accuracy: 1e-4 * 113.68)
        }
        XCTAssertEqual(InputPreprocessing(named: "resnet50"), .caffe)
        XCTAssertEqual(InputPreprocessing(named: "mobilenet_v2"), .tf)
        XCTAssertEqual(InputPreprocessing(named: "densenet"), .torch)
        XCTAssertEqual(InputPreprocessing(named: "efficientnet"), InputPreprocessing.none)
        XCTAssertThrowsError(try InputPreprocessing.caffe.apply(to: RuntimeTensor(shape: [1, 2, 2, 1], data: [1, 2, 3, 4]), channelAxis: 3, what: "x"))
    }

    /// The in-place form an image folder's decoding tasks use is `apply`'s arithmetic, bit for bit.
    func testPreprocessingInPlaceEqualsTheBatchForm() throws {
        var state: UInt32 = 12345
        let values = (0..<(5 * 7 * 3)).map { _ -> Float in
            state = state &* 1664525 &+ 1013904223
            return Float(state >> 8) / Float(1 << 24) * 255
        }
        let x = RuntimeTensor(shape: [1, 5, 7, 3], data: values)
        for mode in InputPreprocessing.allCases {
            var inPlace = values
            inPlace.withUnsafeMutableBufferPointer { mode.applyInPlace(channelsLast: $0, channels: 3) }
            XCTAssertEqual(inPlace.map(\.bitPattern), try mode.apply(to: x, channelAxis: 3, what: "x").data.map(\.bitPattern), "\(mode)")
        }
    }

    func testRefusalsAreOneLine() throws {
        let directory = try temporaryDirectory(self)
        let wrong = directory.appendingPathComponent("wrong.npy").path
        try Data(NumpyFile.encode(RuntimeTensor(shape: [2, 4, 4, 1], data: [Float](repeating: 0, count: 32)))).write(to: URL(fileURLWithPath: wrong))
        let labels = directory.appendingPathComponent("labels.npz").path
        try NumpyArchive.write([("x", RuntimeTensor(shape: [2, 8, 8, 1], data: [Float](repeating: 0, count: 128))),
                                ("y", RuntimeTensor(shape: [2], data: [0, 9]))], to: labels)
        try assertOneLineFailure(["predict", digits, wrong], mentions: "samples have shape [4, 4, 1]; the model's input 'image' takes [8, 8, 1]")
        try assertOneLineFailure(["evaluate", digits, "--data", labels], mentions: "has label 9; the model has 5 classes")
        try assertOneLineFailure(["predict", digits, pretrain, "--class-names", "a,b"], mentions: "has 5 classes; --class-names gives 2 names")
        try assertOneLineFailure(["predict", digits, pretrain, "--class-names", "a,a,b,c,d"], mentions: "'a' is given twice", usage: true)
        try assertOneLineFailure(["predict", digits, pretrain, "--preprocess", "resnet9"], mentions: "not a mode or family", usage: true)
        try assertOneLineFailure(["predict", digits, pretrain, "--preprocess", "caffe"], mentions: "needs 3 colour channels")
        try assertOneLineFailure(["predict", digits, pretrain, "--top", "0"], mentions: "--top must be 1 or more", usage: true)
        try assertOneLineFailure(["evaluate", digits, "--data", wrong], mentions: "has no labels")
        try assertOneLineFailure(["predict", Repository.fixture("keras3/multi_io.keras"), pretrain], mentions: "has 2 inputs")
    }

    func testSVGEscapesClassNames() {
        XCTAssertEqual(Evaluation.xmlEscaped("a<b & \"c\" 'd'\u{1}"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;\u{FFFD}")
    }
}
