import ArgumentParser
import Foundation
import Scion

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a model between formats (.h5, .keras, .onnx), chosen by extension."
    )

    @Argument(help: "The model to read (.h5, .keras, .onnx).")
    var input: String

    @Argument(help: "The file to write; its extension picks the format.")
    var output: String

    @Option(help: "ONNX opset to write (13 to 21).")
    var opset: Int64 = 17

    @Flag(help: "Replace OUTPUT if it exists.")
    var force = false

    @Flag(help: "ONNX: write the weights to OUTPUT.data beside the model (automatic above 2 GB).")
    var externalData = false

    @Flag(help: "Keras: store the weights with HDF5's deflate filter.")
    var compress = false

    @Flag(help: "Keras from ONNX: the model takes channels-last (NHWC) image arrays instead of the ONNX model's NCHW ones.")
    var channelsLastInput = false

    func run() throws {
        try reportingErrors {
            let model = try Model.load(input)
            var options = Model.WriteOptions(opset: opset, force: force)
            if externalData { options.externalDataThreshold = 0 }
            options.compress = compress
            options.channelsLastInputs = channelsLastInput
            try model.write(to: output, options: options)
        }
    }
}
