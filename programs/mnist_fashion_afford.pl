% A price tag and a purse: a handwritten amount (an MNIST digit) and a photo of an item (Fashion-MNIST).
% afford(X, Y): a true/false query, true when the amount read in X pays the price of the item in Y.
nn(digit_net, [X], D, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, D).
nn(item_net, [X], I, [tshirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, boot]) :: item(X, I).

price(tshirt, 2).
price(trouser, 5).
price(pullover, 6).
price(dress, 7).
price(coat, 9).
price(sandal, 3).
price(shirt, 4).
price(sneaker, 6).
price(bag, 8).
price(boot, 8).

afford(X, Y) :- digit(X, D), item(Y, I), price(I, P), D >= P.
