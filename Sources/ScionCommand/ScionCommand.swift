import ArgumentParser
import Foundation

@main
struct ScionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scion",
        abstract: "Move trained neural networks between formats and re-use them for new tasks.",
        discussion: """
            Exit status: 0 success; 1 the work failed (unreadable model, failed verification...); 2 the command line \
            is wrong; 3 diff or compare found the models different.
            """,
        version: "0.1.0",
        subcommands: [InspectCommand.self, ConvertCommand.self, CutCommand.self, GraftCommand.self, FreezeCommand.self,
                      EditCommand.self, DiffCommand.self, GraphCommand.self, RunCommand.self, CompareCommand.self, FinetuneCommand.self,
                      DemoCommand.self,
                      PredictCommand.self, EvaluateCommand.self]
    )

    /// ArgumentParser's own entry point, with Scion's exit statuses: its usage errors (exit 64) become
    /// one `error:` line and status 2, like the commands' own usage checks.
    static func main() {
        do {
            if let unknown = unknownHelpTopic(CommandLine.arguments.dropFirst()) {
                throw UsageError("'\(unknown)' is not a scion command (commands: \(subcommandNames.joined(separator: ", ")))")
            }
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ExitCode {
            Foundation.exit(error.rawValue)
        } catch let error as UsageError {
            printError(error.description)
            Foundation.exit(ExitStatus.usage.rawValue)
        } catch {
            let code = exitCode(for: error)
            guard code == .validationFailure else { exit(withError: error) }
            printError(usageLine(for: error))
            Foundation.exit(ExitStatus.usage.rawValue)
        }
    }

    static var subcommandNames: [String] {
        configuration.subcommands.compactMap { $0.configuration.commandName }
    }

    /// `scion help nope`: ArgumentParser shows the root help and succeeds; a typo should fail.
    static func unknownHelpTopic(_ arguments: ArraySlice<String>) -> String? {
        guard arguments.first == "help", let topic = arguments.dropFirst().first, !topic.hasPrefix("-") else { return nil }
        return subcommandNames.contains(topic) ? nil : topic
    }

    /// ArgumentParser's message, first letter lower-cased, with where to read more.
    static func usageLine(for error: Error) -> String {
        var text = message(for: error)
        if let first = text.first, first.isUppercase, !(text.dropFirst().first?.isUppercase ?? false) {
            text = first.lowercased() + text.dropFirst()
        }
        let arguments = CommandLine.arguments.dropFirst()
        let command = arguments.first.flatMap { subcommandNames.contains($0) ? "scion \($0)" : nil } ?? "scion"
        return text + " (see '\(command) --help')"
    }
}
