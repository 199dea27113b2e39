// SPDX-License-Identifier: Apache-2.0

// Command keychest-lined is the KeyChest line-protocol server: certbot
// hooks and containers register API keys and domains over one-line TCP
// commands on port 10023, stored in PostgreSQL. Beside the line server it
// runs the web endpoints, the mail sender, the certificate monitor and the
// ACME renewal check, all under one errgroup (tasks.go). With a subcommand
// it is the operator's command line (see cli.go), or the monitor alone
// ("monitor").
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 {
		if sub, ok := subcommands[os.Args[1]]; ok {
			os.Exit(runSubcommand(sub, os.Args[2:]))
		}
		switch os.Args[1] {
		case "monitor":
			os.Exit(runMonitor(os.Args[2:]))
		case "probe":
			os.Exit(runProbe(os.Args[2:]))
		case "-h", "-help", "--help", "help":
			printUsage()
			return
		case "-version", "--version", "version":
			fmt.Println("keychest-lined", version)
			return
		case "env-template": // hidden: packaging/ makes /etc/default/keychest-lined with it
			if err := printEnvTemplate(os.Stdout); err != nil {
				os.Exit(1)
			}
			return
		default:
			fmt.Fprintf(os.Stderr, "keychest-lined: unknown subcommand %q\n\n", os.Args[1])
			printUsage()
			os.Exit(2)
		}
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		fmt.Fprintln(os.Stderr, "run 'keychest-lined -h' for the list of settings")
		os.Exit(2)
	}
	log, logs := newLogger(cfg.LogLevel, version)
	code := serve(cfg, log)
	logs.Close()
	os.Exit(code)
}
