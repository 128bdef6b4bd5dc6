from pooltui.commands.cli import main

main()
