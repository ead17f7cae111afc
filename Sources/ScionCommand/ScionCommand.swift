import ArgumentParser

@main
struct ScionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scion",
        abstract: "Move trained neural networks between formats and re-use them for new tasks.",
        version: "0.1.0",
        subcommands: [InspectCommand.self, ConvertCommand.self, CutCommand.self, GraftCommand.self, FreezeCommand.self, EditCommand.self, DiffCommand.self, RunCommand.self, CompareCommand.self, FinetuneCommand.self, DemoCommand.self]
    )
}
