from kblocks.cli import main

main()
