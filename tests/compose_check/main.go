// compose-check loads docker-compose.yml the way `docker compose config` does, with the compose
// specification's reference loader (schema validation, .env interpolation, `${VAR:?message}`
// checks, depends_on and volume references), and prints the resolved project as JSON.
// Machines without a Docker engine use it to check the compose file (tests/test_compose.py).
//
//	compose-check DIR    # reads DIR/docker-compose.yml and DIR/.env, like compose run in DIR
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	options, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithOsEnv,
		cli.WithEnvFiles(),
		cli.WithDotEnv,
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
