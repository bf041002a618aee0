from artifactory.cli import main

raise SystemExit(main())
